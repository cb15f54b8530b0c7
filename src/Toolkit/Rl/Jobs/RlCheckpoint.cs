using System.Runtime.InteropServices;
using System.Text.Json;
using Toolkit.Models;
using Toolkit.Options;
using Toolkit.Paro;
using Toolkit.Runtime;

namespace Toolkit.Rl;

/// <summary>When an RL run saves itself, and where a run resumes from.</summary>
public sealed record RlCheckpointOptions
{
    /// <summary>Save every this many RL steps into <c>checkpoints/step-K/</c> (0: only the final policy).</summary>
    [Option("Save the run every K RL steps into the run folder's checkpoints/step-K (0: only the final policy, " +
        "which is always saved).", Name = "checkpoint-every")]
    public int Every { get; init; }

    /// <summary>A checkpoint of an <c>rl train</c> run to continue: the same trajectory as if it had not
    /// stopped.</summary>
    [Option("Resume from a checkpoint of an rl train run (runs/<id>/checkpoints/step-K): policy, optimizer, the " +
        "samplers' and prompt streams' states, C3PO++'s pool and the steps so far; the run continues to --steps as " +
        "if it had not stopped (the same --rollout and --ranks). A run folder resumes from its latest intact " +
        "checkpoint.", Name = "resume")]
    public string? ResumeFrom { get; init; }

    /// <summary>How many of the newest checkpoints a run keeps; 0 keeps all.</summary>
    [Option("Keep only the newest K checkpoints of the run (0: all).", Name = "keep-checkpoints")]
    public int Keep { get; init; }

    /// <summary>Restarts of every rank from the latest checkpoint when a rank dies or the job fails; 0 none.</summary>
    [Option("When a rank dies or the job fails, start every rank again from the run's latest intact checkpoint, up " +
        "to N times (torchrun's --max-restarts; recorded in the run folder's restarts.jsonl).")]
    public int MaxRestarts { get; init; }

    /// <summary>Throws naming the first invalid setting: a checkpoint to resume must have been written by as many
    /// ranks, with the same rollout mode, and have fewer than <paramref name="steps"/> steps done.</summary>
    public RlCheckpointOptions Validate(int ranks, bool c3po, int steps)
    {
        if (Every < 0) throw new ArgumentOutOfRangeException(nameof(Every), Every, "must not be negative");
        if (Keep < 0) throw new ArgumentOutOfRangeException(nameof(Keep), Keep, "must not be negative");
        if (MaxRestarts < 0) throw new ArgumentOutOfRangeException(nameof(MaxRestarts), MaxRestarts,
            "must not be negative");
        if (ResumeFrom is null) return this;
        var folder = Checkpoints.CheckpointFolders.Resolve(ResumeFrom);
        var state = RlCheckpoint.ReadRun(folder);
        if (state.NextStep >= steps) throw new ArgumentOutOfRangeException(nameof(RlTrainOptions.Steps), steps,
            $"the checkpoint has done {state.NextStep} steps already; ask for more");
        if (state.Ranks != ranks) throw new ArgumentOutOfRangeException(nameof(ResumeFrom), folder,
            $"was written by {state.Ranks} ranks; resume it with --ranks {state.Ranks} (each rank's sampler is " +
                "saved)");
        var saved = RlCheckpoint.ReadRank(folder, 0).Pool is null ? "sync" : "c3po++";
        if (saved != (c3po ? "c3po++" : "sync")) throw new ArgumentOutOfRangeException(nameof(ResumeFrom), folder,
            $"was written by a run with --rollout {saved}; resume it with --rollout {saved}");
        return this;
    }
}

/// <summary>What an RL run had done when it saved: the next step, the policy version, its accuracies before RL and
/// every step's record so far.</summary>
internal sealed record RlRunState(int NextStep, int Version, int Ranks, double InitialAccuracy,
    double WarmStartAccuracy, double WarmStartSeconds, IReadOnlyList<RlStep> Steps);

/// <summary>One rank's state: its sampler's generator, how many prompts its stream has drawn, and for C3PO++ its pool
/// of partial rollouts (null for synchronous rollouts).</summary>
internal sealed record RlRankState(byte[] Sampler, long PromptsDrawn, C3poPool? Pool = null);

/// <summary>
/// An RL run's checkpoint: the PaRO engine's (policy and AdamW state, any strategy's shards; with the model's
/// description, so batch inference and <c>model export</c> read it as a model) plus <c>rl-state.json</c> (the run)
/// and <c>rl-rank-R.json</c> (each rank's random state), and <c>reference.f32</c> when the loss has a KL term.
/// </summary>
internal static class RlCheckpoint
{
    private const string RunFile = "rl-state.json";
    private const string ReferenceFile = "reference.f32";

    private static string RankFile(int rank) => $"rl-rank-{rank}.json";

    /// <summary>Collective: writes the checkpoint of step <paramref name="step"/> and returns its folder.</summary>
    public static string Save(string runPath, int step, ShardedTrainer trainer, ModelSource model,
        Comm.Communicator comm, RlRunState run, RlRankState rank, float[]? reference, int keep = 0,
        Action<string>? log = null)
    {
        var folder = Checkpoints.CheckpointFolders.Staging(runPath, step);
        trainer.SaveCheckpoint(folder);
        ToolkitJson.Write(Path.Combine(folder, RankFile(comm.Rank)), rank);
        if (comm.Rank == 0)
        {
            model.WriteDescription(Path.Combine(folder, ModelSource.DescriptionFolder));
            ToolkitJson.Write(Path.Combine(folder, RunFile), run);
            if (reference is not null)
                File.WriteAllBytes(Path.Combine(folder, ReferenceFile),
                    MemoryMarshal.AsBytes(reference.AsSpan()).ToArray());
        }
        comm.Barrier();   // every rank's state is in the staging folder
        if (comm.Rank == 0) Checkpoints.CheckpointFolders.Publish(runPath, step, keep, log);
        comm.Barrier();
        return Checkpoints.CheckpointFolders.Final(runPath, step);
    }

    /// <summary>The run's state in <paramref name="folder"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The folder is not an RL checkpoint.</exception>
    public static RlRunState ReadRun(string folder)
    {
        var file = Path.Combine(folder, RunFile);
        if (!File.Exists(file)) throw new ArgumentOutOfRangeException(nameof(RlCheckpointOptions.ResumeFrom), folder,
            $"is not a checkpoint of an rl train run (it has no {RunFile})");
        return JsonSerializer.Deserialize<RlRunState>(File.ReadAllText(file), ToolkitJson.Options)
            ?? throw new ArgumentOutOfRangeException(nameof(RlCheckpointOptions.ResumeFrom), folder,
                $"its {RunFile} is empty");
    }

    /// <summary>Rank <paramref name="rank"/>'s random state in <paramref name="folder"/>.</summary>
    public static RlRankState ReadRank(string folder, int rank) =>
        JsonSerializer.Deserialize<RlRankState>(File.ReadAllText(Path.Combine(folder, RankFile(rank))),
            ToolkitJson.Options) ?? throw new ArgumentException($"{folder}: rank {rank}'s state is empty");

    /// <summary>The KL term's reference policy saved with the run, or null.</summary>
    public static float[]? ReadReference(string folder)
    {
        var file = Path.Combine(folder, ReferenceFile);
        return File.Exists(file) ? MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(file)).ToArray() : null;
    }
}
