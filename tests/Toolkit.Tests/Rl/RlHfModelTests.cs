using Toolkit.Generation;
using Toolkit.Models;
using Toolkit.Rl;
using Toolkit.Runtime;
using Toolkit.Tests.Models;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Rl;

/// <summary>
/// The RL job on Hugging Face folders: prompts and answers in the model's BPE tokens with its EOS as the stop token, a
/// Mixtral's routing flips per layer (none when the rollout numerics are the trainer's), and the trained policy
/// exported as a folder that loads back with the weights the engine last received.
/// </summary>
public sealed class RlHfModelTests : IDisposable
{
    private readonly TemporaryFolder _root = new("toolkit-rl-hf-");

    public RlHfModelTests() => TorchRuntime.EnsureInitialized();

    public void Dispose() => _root.Dispose();

    private RlTrainOptions Job(string model, Numerics numerics = Numerics.Fp32) => new()
    {
        Launch = new() { Ranks = 2, GroupSize = 1, RunsDirectory = _root.Path },
        Model = new() { Name = model },
        WarmupSteps = 20,
        Steps = 2,
        EvalEvery = 1,
        Rollout = new() { Precision = numerics, Prompts = 4, Samples = 4, Pool = 16 },
    };

    [Fact]
    public void TaskTokens_UseTheModelsBpeAndEos()
    {
        using var hf = HfModel.Open(TinyModels.Write(_root.Path, "llama"));
        var tokens = new TaskTokens(hf.Tokenizer);
        Assert.Equal(hf.Tokenizer.EosIds, tokens.Stop);
        var problem = new Problem("17+25=", "42");
        Assert.Equal(hf.Tokenizer.Encode("17+25="), tokens.Prompt(problem));
        Assert.Equal(hf.Tokenizer.BosId, tokens.Prompt(problem)[0]);                          // the tokenizer adds BOS
        Assert.Equal([.. hf.Tokenizer.EncodeText("42"), hf.Tokenizer.EosIds[0]], tokens.Answer(problem));
        var stopped = new Sequence(0, tokens.Prompt(problem));
        stopped.Tokens.AddRange(tokens.Answer(problem));
        // judged as a stopped answer
        Assert.Equal("42\n", tokens.Completion(stopped));
        Assert.Equal(1.0, VerifiableTask.Named("addition").Judge(problem, tokens.Completion(stopped)).Reward);
    }

    [Fact]
    public async Task Llama_TrainsAndExportsThePolicy()
    {
        var folder = TinyModels.Write(_root.Path, "llama");
        var export = Path.Combine(_root.Path, "policy");
        var result = await RlTrainJob.RunAsync(Job(folder) with { Export = export });
        var parameters = ModelLayout.Count(HfConfig.Read(folder).Config);
        Assert.All(result.Steps, s =>
        {
            Assert.Equal(16, s.Responses);
            Assert.True(double.IsFinite(s.GradNorm) && s.LogProbDiffMax < 1e-3,
                $"fp32 rollouts: |dlogp| max {s.LogProbDiffMax}");
            Assert.Equal(parameters * 4, s.SyncBytes);
            Assert.Empty(s.RoutingFlips);
        });
        using var exported = HfModel.Open(export);
        Assert.Equal(HfConfig.Read(folder).Config, exported.Config);
        using var original = HfModel.Open(folder);
        using var before = original.Weights.Read("model.layers.0.self_attn.q_proj.weight",
            TorchSharp.torch.ScalarType.Float32);
        using var after = exported.Weights.Read("model.layers.0.self_attn.q_proj.weight",
            TorchSharp.torch.ScalarType.Float32);
        Assert.False(before.equal(after).all().item<bool>(), "the exported policy is the untrained model");
    }

    [Theory]
    [InlineData(Numerics.Fp32)]
    [InlineData(Numerics.Bf16)]
    public async Task Mixtral_ReportsRoutingFlipsPerLayer(Numerics numerics)
    {
        var result = await RlTrainJob.RunAsync(Job(TinyModels.Write(_root.Path, "mixtral"), numerics));
        Assert.All(result.Steps, s =>
        {
            Assert.Equal(2, s.RoutingFlips.Count);                                            // two sparse layers
            Assert.All(s.RoutingFlips, f => Assert.InRange(f, 0, 1));
            if (numerics == Numerics.Fp32) Assert.All(s.RoutingFlips, f => Assert.Equal(0, f));
        });
        if (numerics == Numerics.Bf16) Assert.Contains(result.Steps, s => s.LogProbDiffMax > 1e-4);
    }

    /// <summary>Word problems on a model with a learned BPE tokenizer and the context to hold them: the warm start
    /// teaches the answer format, and RL steps run on it.</summary>
    [Fact]
    public async Task WordProblems_TrainOnAModelWithARealTokenizer()
    {
        var folder = TinyModels.Write(_root.Path, "llama", o => o with { Context = 192 });
        var result = await RlTrainJob.RunAsync(Job(folder) with { Task = "wordproblems", WarmupSteps = 40,
            WarmupLr = 3e-3 });
        Assert.All(result.Steps, s =>
        {
            Assert.Equal(16, s.Responses);
            Assert.True(s.MalformedFraction < 1, "no completion had a final answer line after the warm start");
        });
    }
}
