using Toolkit.Comm;
using Toolkit.Generation;
using Toolkit.Models;
using Toolkit.Paro;
using Toolkit.Rl;
using Toolkit.Runtime;
using static TorchSharp.torch;

namespace Toolkit.Tests.Rl;

/// <summary>
/// The whole RL loop (engine rollouts, scoring, group advantages, the corrected GRPO update through the PaRO engine,
/// weight sync) must raise the reward of an objective a policy can learn in a few steps: respond with a byte below 128,
/// which a random policy does half the time.
/// </summary>
public sealed class GrpoLearningTests
{
    private sealed class LowByteTask : VerifiableTask
    {
        public override string Name => "low-byte";
        public override int MaxCompletionTokens => 1;
        public override Problem Draw(Random random) => new("q=", "a");
        public override Score Judge(Problem problem, string generated) => Score.Judged(generated[0] < 128);
        protected override Score JudgeStopped(Problem problem, string answer) => throw new NotSupportedException();
    }

    [Theory]
    [InlineData(Correction.IcePop, Numerics.Fp32, 1, 1)]
    [InlineData(Correction.None, Numerics.Bf16, 1, 1)]
    [InlineData(Correction.IcePop, Numerics.Bf16, 2, 2)]
    public void GrpoSteps_RaiseTheReward(Correction correction, Numerics numerics, int epochs, int miniBatches)
    {
        var options = new RlTrainOptions { Correction = new() { Correction = correction },
            Optimizer = new() { LearningRate = 3e-3, Beta2 = 0.99, WeightDecay = 0 },
            Loss = new() { PpoEpochs = epochs, MiniBatches = miniBatches } };
        var rewards = Run(options, numerics, 40).Select(u => u.RewardSum / u.Responses).ToList();
        var (first, last) = (rewards.Take(3).Average(), rewards.TakeLast(3).Average());
        Assert.True(last > first + 0.25 && last > 0.8,
            $"reward {first:F2} -> {last:F2}: {string.Join(" ", rewards.Select(r => r.ToString("F2")))}");
    }

    /// <summary>
    /// One optimizer step per rollout batch keeps the PPO ratio at exactly 1, so the clip never binds; four epochs in
    /// two mini-batches at a high learning rate move the policy away from the one that sampled, and the clip binds.
    /// </summary>
    [Fact]
    public void PpoEpochs_MoveTheRatio_UntilTheClipBinds()
    {
        RlTrainOptions Options(int epochs, int miniBatches) => new()
        {
            Correction = new() { Correction = Correction.None },
            Optimizer = new() { LearningRate = 1e-2, Beta2 = 0.99, WeightDecay = 0 },
            Loss = new() { PpoEpochs = epochs, MiniBatches = miniBatches },
        };
        var single = Run(Options(1, 1), Numerics.Fp32, 4);
        Assert.All(single, u => Assert.Equal(0.0, u.ClipFraction));
        var ppo = Run(Options(4, 2), Numerics.Fp32, 4);
        Assert.Contains(ppo, u => u.ClipFraction > 0);
        Assert.All(ppo, u => Assert.True(u.GradNormMax >= u.GradNorm));
    }

    /// <summary>log π_θ_old comes from a copy of the trainer's weights, refreshed every step: with a policy that
    /// barely moves (a learning rate of 1e-12) the ratio stays 1 to float rounding, step after step, and nothing is
    /// clipped.</summary>
    [Fact]
    public void PpoEpochs_WithAPolicyThatDoesNotMove_NeverClip()
    {
        var options = new RlTrainOptions
        {
            Correction = new() { Correction = Correction.None },
            Optimizer = new() { LearningRate = 1e-12, Beta2 = 0.99, WeightDecay = 0 },
            Loss = new() { PpoEpochs = 2, MiniBatches = 2 },
        };
        Assert.All(Run(options, Numerics.Fp32, 3), u => Assert.Equal(0.0, u.ClipFraction));
    }

    private static List<UpdateStats> Run(RlTrainOptions options, Numerics numerics, int steps)
    {
        TorchRuntime.EnsureInitialized();
        var config = GptConfig.Tiny;
        var task = new LowByteTask();
        return InProcessCluster.Run(1, 1, comm =>
        {
            using var model = Gpt.Create(config, 5);
            using var trainer = ShardedTrainer.Create(model, new ShardingPlan(ShardingStrategy.Parse("NNN"), 1), comm,
                options.Optimizer);
            using var engine = new GenerationEngine(config, numerics, slots: 64, new SamplingOptions(),
                [VerifiableTask.Stop], maxTokens: 1, seed: 3);
            var version = 1;
            var flat = trainer.GatherParameters();
            engine.LoadWeights(flat, version);
            using var update = new PolicyUpdate(trainer, task, TaskTokens.Bytes, options, config, null, 64);
            var source = new SynchronousRollouts(engine, new PromptStream([new Problem("q=", "a")], 1),
                promptsPerStep: 8, groupSize: 8);
            var stats = new List<UpdateStats>();
            for (var step = 0; step < steps; step++)
            {
                stats.Add(update.Run(source.Next(), version, flat));
                flat = trainer.GatherParameters();
                engine.LoadWeights(flat, ++version);
            }
            return stats;
        })[0];
    }
}
