using System.Text.Json.Serialization;
using Toolkit.Generation;
using Toolkit.Jobs;
using Toolkit.Models;
using Toolkit.Options;
using Toolkit.Paro;

namespace Toolkit.Rl;

/// <summary>How rollouts are produced each step.</summary>
public enum RolloutMode
{
    /// <summary>Generate the whole batch (prompts × samples) to completion, then train.</summary>
    [JsonStringEnumMemberName("sync")] Sync,
    /// <summary>C3PO++: keep the pool full, train once completed groups reach the token budget, carry the rest
    /// over.</summary>
    [JsonStringEnumMemberName("c3po++")] C3poPlusPlus,
}

/// <summary>The policy's feed-forward.</summary>
public enum PolicyKind
{
    /// <summary>The GPT's dense 4x MLP.</summary>
    [JsonStringEnumMemberName("dense")] Dense,
    /// <summary>A mixture of experts: top-k routed experts per block, with a load-balancing loss.</summary>
    [JsonStringEnumMemberName("moe")] Moe,
}

/// <summary>The rollout engine and how it is used.</summary>
public sealed record RolloutOptions
{
    /// <summary>The engine's numerics. Default fp32.</summary>
    [Option("Rollout engine numerics: fp32 (the trainer's), bf16, fp16, int8 (weight-only) or fp8 (E4M3 weights and " +
        "activations, W8A8); anything but fp32 creates a train/inference mismatch.", Name = "rollout-precision")]
    public Numerics Precision { get; init; } = Numerics.Fp32;

    /// <summary>Route MoE tokens in fp32 in the rollout engine, as the trainer does. Default off: the engine routes
    /// in its compute precision (bf16 for bf16, int8 and fp8; fp16 for fp16), as serving engines do.</summary>
    [Option("MoE policy: the rollout engine computes router logits in fp32, as the trainer does, instead of in its " +
        "compute precision as serving engines do (removes the router's own rounding from the mismatch).")]
    public bool RouterFp32 { get; init; }

    /// <summary>sync or c3po++. Default sync.</summary>
    [Option("sync (generate the whole batch, then train) or c3po++ (token budget; unfinished rollouts resumed by the " +
        "next policy version).", Name = "rollout")]
    public RolloutMode Mode { get; init; } = RolloutMode.Sync;

    /// <summary>Prompts per step over all ranks (sync). Default 32.</summary>
    [Option("Prompts per step over all ranks (sync mode).")]
    public int Prompts { get; init; } = 32;

    /// <summary>Responses per prompt, GRPO's group size G. Default 8.</summary>
    [Option("Responses per prompt (GRPO's group size G).")]
    public int Samples { get; init; } = 8;

    /// <summary>C3PO++'s token budget Φ per step over all ranks. Default 640.</summary>
    [Option("C3PO++ token budget Phi per step, over all ranks, kept on average (a step that trained beyond it " +
        "leaves the next that much less); also the 1/Phi of the budget normalisation.")]
    public long Budget { get; init; } = 640;

    /// <summary>Inference pool capacity Ω per rank. Default 64.</summary>
    [Option("Inference pool capacity Omega: sequences decoded at once per rank.")]
    public int Pool { get; init; } = 64;

    /// <summary>C3PO++'s staleness limit σ. Default 2.</summary>
    [Option("C3PO++ staleness sigma: a group still unfinished after this many carry-overs is purged.")]
    public int Staleness { get; init; } = 2;

    /// <summary>C3PO++: carried responses keep their KV cache through the weight sync. Default off.</summary>
    [Option("C3PO++: responses carried to the next policy version keep their KV cache through the weight sync " +
        "(PipelineRL's in-flight weight update) instead of feeding their prefix again; their later tokens attend to " +
        "keys and values of older weights, which the train/infer correction sees as mismatch. A resumed run feeds " +
        "the carried prefixes again, so resume is exact only without it.")]
    public bool InflightUpdate { get; init; }

    /// <summary>DAPO's dynamic sampling (sync mode): groups whose rewards are all equal are dropped and refilled.
    /// Default off.</summary>
    [Option("Dynamic sampling (DAPO; sync rollouts): drop groups whose rewards are all equal and draw more prompts " +
        "to refill the batch.")]
    public bool DynamicSampling { get; init; }

    /// <summary>Draws per step at most with dynamic sampling, the first included. Default 4.</summary>
    [Option("Dynamic sampling: rollout batches drawn per step at most (the first included).")]
    public int MaxSampleBatches { get; init; } = 4;

    /// <summary>Temperature and top-p.</summary>
    [OptionGroup] public SamplingOptions Sampling { get; init; } = new();
}

/// <summary>Options of <c>rl train</c>: GRPO with a mismatch correction on a verifiable task, rollouts from a separate
/// engine, the update through the PaRO engine.</summary>
public sealed record RlTrainOptions : IJobOptions
{
    /// <summary>Where the ranks run. Default 2 in-process ranks (each generates and trains on its share).</summary>
    [OptionGroup] public LaunchOptions Launch { get; init; } = new() { Ranks = 2, GroupSize = 1 };

    /// <summary>The task. Default addition.</summary>
    [Option("Verifiable task: addition, multiplication, countdown, longtail or wordproblems (grade-school word " +
        "problems with a #### final-answer line; needs a context of about 150 byte tokens, or a real tokenizer).")]
    public string Task { get; init; } = "addition";

    /// <summary>The policy: a GPT preset, a checkpoint or a Hugging Face folder. Default the small GPT.</summary>
    [OptionGroup] public ModelOptions Model { get; init; } = new() { Name = "small" };

    /// <summary>dense or moe. Default dense.</summary>
    [Option("Policy feed-forward: dense, or moe (top-k routed experts per block: routing near-ties flip across " +
        "numerics).")]
    public PolicyKind Policy { get; init; } = PolicyKind.Dense;

    /// <summary>Experts per block of a moe policy. Default 4.</summary>
    [Option("Experts per block of a moe policy.")]
    public int Experts { get; init; } = 4;

    /// <summary>Experts each token is routed to. Default 2.</summary>
    [Option("Experts each token is routed to (moe).")]
    public int TopK { get; init; } = 2;

    /// <summary>Weight of the load-balancing loss of a moe policy. Default 0.01.</summary>
    [Option("Weight of the moe policy's load-balancing loss (Switch Transformer's E * sum f_e P_e).")]
    public double LoadBalance { get; init; } = 0.01;

    /// <summary>The policy, resolved: the model, with experts for a moe policy of a preset.</summary>
    /// <exception cref="ArgumentException">--policy moe with a folder (whose config says whether it has
    /// experts).</exception>
    public ModelSource ResolvePolicy() => Policy == PolicyKind.Moe
        ? ModelSource.Resolve(Model.Name, preset => preset.WithExperts(Experts, TopK))
        : Model.Resolve();

    /// <summary>At the end, write the trained policy here as a Hugging Face folder (null: no export).</summary>
    [Option("At the end, write the trained policy as a Hugging Face folder here (none: no export; a GPT with " +
        "--policy moe has no Hugging Face form).")]
    public string? Export { get; init; }

    /// <summary>Checkpoints of the run, and the one to resume from.</summary>
    [OptionGroup] public RlCheckpointOptions Checkpoint { get; init; } = new();

    /// <summary>The mismatch correction. Default IcePop with α = 0.5, β = 5.</summary>
    [OptionGroup] public CorrectionOptions Correction { get; init; } = new();

    /// <summary>Clip, KL and normalisation.</summary>
    [OptionGroup] public GrpoOptions Loss { get; init; } = new();

    /// <summary>The rollout engine.</summary>
    [OptionGroup] public RolloutOptions Rollout { get; init; } = new();

    /// <summary>PaRO strategy of the policy update. Default NNN (DDP).</summary>
    [Option("PaRO strategy of the policy update (NNN = DDP, NIG, GGG = ZeRO-3, ...).")]
    public string Strategy { get; init; } = "NNN";

    /// <summary>AdamW of the RL phase. Default learning rate 1e-4 (on addition 3e-4 learned less steadily and 1e-3
    /// collapsed to 0 % accuracy), β2 0.99, no weight decay, no gradient clipping.</summary>
    [OptionGroup] public AdamWOptions Optimizer { get; init; } = new() { LearningRate = 1e-4, Beta2 = 0.99,
        WeightDecay = 0 };

    /// <summary>Warm-up and decay of the RL phase's learning rate, per RL step. Default constant, no
    /// warm-up.</summary>
    [OptionGroup] public LrScheduleOptions LrSchedule { get; init; } = new();

    /// <summary>Supervised warm-start steps before RL. Default 400 (addition: about 40 % held-out accuracy, leaving RL
    /// room to show).</summary>
    [Option("Supervised warm-start steps on the training answers, so the policy starts with non-zero reward (0: " +
        "none).")]
    public int WarmupSteps { get; init; } = 400;

    /// <summary>Warm-start learning rate. Default 1e-3 (3e-3 left the small GPT's loss on addition noisy near 1.1 nats
    /// per token).</summary>
    [Option("Learning rate of the warm start.")]
    public double WarmupLr { get; init; } = 1e-3;

    /// <summary>Warm-start sequences per rank per step. Default 32.</summary>
    [Option("Warm-start sequences per rank per step.")]
    public int WarmupBatch { get; init; } = 32;

    /// <summary>RL steps. Default 200 (addition from the default warm start: about +25 points held-out in about 2
    /// minutes on 2 cores).</summary>
    [Option("RL steps (policy updates).")]
    public int Steps { get; init; } = 200;

    /// <summary>Held-out evaluation period. Default 20.</summary>
    [Option("Evaluate held-out accuracy (greedy decoding) every K steps, and before the first and after the last.")]
    public int EvalEvery { get; init; } = 20;

    /// <summary>Gradient-norm limit of the divergence guard (before clipping). Default 1000.</summary>
    [Option("Stop the run when a gradient norm (before clipping) exceeds this, or any diagnostic is not finite.")]
    public double StopGradNorm { get; init; } = 1000;

    /// <summary>Seed of weights, prompts and sampling. Default 1.</summary>
    [Option("Seed of weights, prompts and sampling.")]
    public int Seed { get; init; } = 1;

    /// <summary>The task.</summary>
    [JsonIgnore] public VerifiableTask TaskDefinition => VerifiableTask.All.TryGetValue(Task, out var t)
        ? t : throw new ArgumentOutOfRangeException(nameof(Task), Task,
            $"unknown task; valid: {string.Join(", ", VerifiableTask.All.Keys)}");

    /// <summary>Throws naming the first invalid option.</summary>
    public RlTrainOptions Validate()
    {
        Launch.Validate();
        var task = TaskDefinition;
        if (Policy == PolicyKind.Moe && Experts < 2) throw new ArgumentOutOfRangeException(nameof(Experts), Experts,
            "must be at least 2");
        if (Policy == PolicyKind.Moe
            && (TopK < 1 || TopK > Experts)) throw new ArgumentOutOfRangeException(nameof(TopK), TopK,
                $"must be in [1, --experts ({Experts})]");
        if (!(LoadBalance >= 0)) throw new ArgumentOutOfRangeException(nameof(LoadBalance), LoadBalance,
            "must not be negative");
        var source = ResolvePolicy();
        var config = source.Config;
        var tokens = new TaskTokens(source.Tokenizer);
        var longest = TaskDatasets.Load(task, heldOut: false).Concat(TaskDatasets.Load(task, heldOut: true))
            .Max(p => tokens.Prompt(p).Length);
        if (config.ContextLength < longest + task.MaxCompletionTokens)
            throw new ArgumentOutOfRangeException(nameof(Model.Name), Model.Name,
                $"its context ({config.ContextLength}) is too short for the prompts of {Task} (up to {longest} " +
                    $"tokens) and its {task.MaxCompletionTokens}-token answers");
        if (Export is not null && config is Models.GptConfig { Experts: > 0 })
            throw new ArgumentOutOfRangeException(nameof(Export), Export,
                "a GPT with experts (--policy moe) has no Hugging Face form; train a mixtral or qwen2_moe folder to " +
                    "export experts");
        if (Export is not null && File.Exists(Export)) throw new ArgumentOutOfRangeException(nameof(Export), Export,
            "is a file; give a folder to write the policy into");
        Correction.Validate();
        Loss.Validate();
        Rollout.Sampling.Validate();
        if (Rollout.Sampling.Temperature == 0)
            throw new ArgumentOutOfRangeException(nameof(Rollout.Sampling.Temperature), 0.0,
                "must be positive for RL: a group of identical greedy responses has no advantage");
        _ = new ShardingPlan(ShardingStrategy.Parse(Strategy), Launch.GroupSize).Validate(Launch.Ranks);
        Optimizer.Validate();
        if (Rollout.Samples < 2) throw new ArgumentOutOfRangeException(nameof(Rollout.Samples), Rollout.Samples,
            "must be at least 2 (advantages are relative within a group)");
        if (Rollout.Mode == RolloutMode.Sync && (Rollout.Prompts < Launch.Ranks || Rollout.Prompts % Launch.Ranks != 0))
            throw new ArgumentOutOfRangeException(nameof(Rollout.Prompts), Rollout.Prompts,
                $"must be a positive multiple of --ranks ({Launch.Ranks})");
        if ((Rollout.Mode == RolloutMode.C3poPlusPlus || Loss.Aggregation == LossAggregation.Budget)
            && Rollout.Budget / Launch.Ranks < task.MaxCompletionTokens)
            throw new ArgumentOutOfRangeException(nameof(Rollout.Budget), Rollout.Budget,
                $"is smaller than one response per rank ({task.MaxCompletionTokens} tokens for {Task}, " +
                    $"{Launch.Ranks} ranks)");
        if (Rollout.Pool < 1) throw new ArgumentOutOfRangeException(nameof(Rollout.Pool), Rollout.Pool,
            "must be at least 1");
        if (Rollout.Staleness < 0) throw new ArgumentOutOfRangeException(nameof(Rollout.Staleness), Rollout.Staleness,
            "must not be negative");
        if (Rollout.InflightUpdate && Rollout.Mode != RolloutMode.C3poPlusPlus) throw new ArgumentException(
            "applies to C3PO++ rollouts only (--rollout c3po++): synchronous rollouts carry nothing over",
            nameof(Rollout.InflightUpdate));
        if (Steps < 1) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "must be at least 1");
        if (WarmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(WarmupSteps), WarmupSteps,
            "must not be negative");
        if (!(WarmupLr > 0)) throw new ArgumentOutOfRangeException(nameof(WarmupLr), WarmupLr, "must be positive");
        if (WarmupBatch < 1) throw new ArgumentOutOfRangeException(nameof(WarmupBatch), WarmupBatch,
            "must be at least 1");
        if (EvalEvery < 1) throw new ArgumentOutOfRangeException(nameof(EvalEvery), EvalEvery, "must be at least 1");
        if (!(StopGradNorm > 0)) throw new ArgumentOutOfRangeException(nameof(StopGradNorm), StopGradNorm,
            "must be positive");
        Checkpoint.Validate(Launch.Ranks, Rollout.Mode == RolloutMode.C3poPlusPlus, Steps);
        LrSchedule.Validate();
        if (Rollout.DynamicSampling && Rollout.Mode != RolloutMode.Sync)
            throw new ArgumentOutOfRangeException(nameof(Rollout.DynamicSampling), true,
                "refills a synchronous batch; use it with --rollout sync");
        if (Rollout.MaxSampleBatches < 1) throw new ArgumentOutOfRangeException(nameof(Rollout.MaxSampleBatches),
            Rollout.MaxSampleBatches, "must be at least 1");
        // every rank runs the same number of optimizer steps, so each mini-batch needs a response on every rank
        var responses = Rollout.Mode == RolloutMode.Sync && !Rollout.DynamicSampling
            ? Rollout.Prompts / Launch.Ranks * Rollout.Samples : Rollout.Samples;
        if (Loss.MiniBatches > responses) throw new ArgumentOutOfRangeException(nameof(Loss.MiniBatches),
            Loss.MiniBatches, $"is more than the {responses} responses a rank is sure to have per step");
        return this;
    }

    void ICheckedOptions.Check() => Validate();
}
