using Toolkit.Checkpoints;
using Toolkit.Models;
using Toolkit.Paro;
using Toolkit.Runtime;
using Toolkit.Tests.Models;
using Toolkit.Tests.Support;
using static TorchSharp.torch;

namespace Toolkit.Tests.Paro;

/// <summary>
/// <c>paro train</c> and <c>paro plan</c> on a Hugging Face folder: the job's checkpoint (mixed precision, ZeRO-3)
/// carries its model's description and exports to a folder whose tensors are the checkpoint's fp32 values under the
/// original names, in the dtype asked for; the plan reads the sizes from config.json alone.
/// </summary>
public sealed class ParoHfJobTests : IDisposable
{
    private readonly TemporaryFolder _root = new("paro-hf-job-");

    public ParoHfJobTests() => TorchRuntime.EnsureInitialized();

    public void Dispose() => _root.Dispose();

    [Fact]
    public async Task Bf16GggCheckpoint_ExportsItsValues_UnderTheOriginalNames()
    {
        var folder = TinyModels.Write(_root.Path, "qwen2");
        var exported = Path.Combine(_root.Path, "exported");
        var result = await ParoTrainJob.RunAsync(new ParoTrainOptions
        {
            Model = new() { Name = folder }, Sharding = new() { Strategy = "GGG", Precision = ParoPrecision.Bf16 },
                Steps = 2,
            Data = new() { SequenceLength = 16, MicroBatch = 2 }, Launch = new() { RunsDirectory = _root.Path },
            Checkpoint = new() { Every = 2, Export = exported },
        });
        var checkpoint = Path.Combine(result.RunPath, "checkpoints", "step-2");
        Assert.Equal(ModelSourceKind.Checkpoint, ModelSource.Resolve(checkpoint).Kind);
        using var hf = HfModel.Open(exported);
        Assert.Equal(HfConfig.Read(folder).Config, hf.Config);
        var values = new CheckpointParameterSource(checkpoint);
        long offset = 0;
        foreach (var (name, shape) in ModelLayout.Of(hf.Config))
        {
            using var expected = zeros(shape);
            values.Fill(offset, expected.view(-1));
            using var stored = hf.Weights.Read(name, ScalarType.Float32);
            Assert.True(expected.eq(stored).all().item<bool>(), name);
            offset += shape.Aggregate(1L, (a, b) => a * b);
        }
        // tied, as transformers writes it
        Assert.False(hf.Weights.Contains("lm_head.weight"));

        var halves = new ModelExportOptions { Checkpoint = checkpoint, Out = Path.Combine(_root.Path, "bf16"),
            Dtype = "bfloat16" }.Run();
        using var bf16 = HfModel.Open(halves.Folder!);
        Assert.Equal("bfloat16", bf16.DType);
        Assert.All(bf16.Weights.Files.SelectMany(f => f.Tensors.Values), e => Assert.Equal("BF16", e.DType));
    }

    [Fact]
    public void Plan_ReadsTheSizesFromConfigJsonAlone()
    {
        var folder = TinyModels.Write(_root.Path, "mixtral");
        foreach (var file in Directory.GetFiles(folder, "*.safetensors")) File.Delete(file);    // no weights needed
        var model = new ParoPlanOptions { Model = folder }.ToModel();
        var config = HfConfig.Read(folder).Config;
        Assert.Equal(config.ParameterCount, model.TotalParameters);
        Assert.Equal(config.Layers, model.Layers);
        Assert.Equal(config.Hidden, model.Hidden);
    }
}
