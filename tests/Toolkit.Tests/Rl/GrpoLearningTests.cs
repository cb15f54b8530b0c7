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
    [InlineData(Correction.IcePop, Numerics.Fp32)]
    [InlineData(Correction.None, Numerics.Bf16)]
    public void GrpoSteps_RaiseTheReward(Correction correction, Numerics numerics)
    {
        TorchRuntime.EnsureInitialized();
        var config = GptConfig.Tiny;
        var options = new RlTrainOptions { Correction = new() { Correction = correction },
            Optimizer = new() { LearningRate = 3e-3, Beta2 = 0.99, WeightDecay = 0 } };
        var task = new LowByteTask();
        var rewards = InProcessCluster.Run(1, 1, comm =>
        {
            using var model = Gpt.Create(config, 5);
            using var trainer = ShardedTrainer.Create(model, new ShardingPlan(ShardingStrategy.Parse("NNN"), 1), comm,
                options.Optimizer);
            using var engine = new GenerationEngine(config, numerics, slots: 64, new SamplingOptions(),
                [VerifiableTask.Stop], maxTokens: 1, seed: 3);
            var version = 1;
            engine.LoadWeights(trainer.GatherParameters(), version);
            var source = new SynchronousRollouts(engine, new PromptStream([new Problem("q=", "a")], 1),
                promptsPerStep: 8, groupSize: 8);
            var means = new List<double>();
            for (var step = 0; step < 40; step++)
            {
                var update
                    = RlTrainJob.Update(trainer, task, TaskTokens.Bytes, source.Next(), options, version, null, 64);
                means.Add(update.RewardSum / update.Responses);
                engine.LoadWeights(trainer.GatherParameters(), ++version);
            }
            return means;
        })[0];
        var (first, last) = (rewards.Take(3).Average(), rewards.TakeLast(3).Average());
        Assert.True(last > first + 0.25 && last > 0.8,
            $"reward {first:F2} -> {last:F2}: {string.Join(" ", rewards.Select(r => r.ToString("F2")))}");
    }
}
