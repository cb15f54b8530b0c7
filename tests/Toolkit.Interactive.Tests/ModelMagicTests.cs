using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Events;
using static Toolkit.Interactive.Tests.KernelResults;

namespace Toolkit.Interactive.Tests;

/// <summary>
/// <c>#!model</c> in a real kernel: a random-weight Hugging Face folder made, described and trained by <c>#!paro train
/// --model</c>; a bad value or a retired option fails in one line naming it, and the kernel stays usable.
/// </summary>
public sealed class ModelMagicTests : IDisposable
{
    private readonly CompositeKernel _kernel = KernelFactory.Create();
    private readonly string _folder = Directory.CreateTempSubdirectory("toolkit-model-magic-").FullName;

    public void Dispose()
    {
        _kernel.Dispose();
        Directory.Delete(_folder, recursive: true);
    }

    [Fact]
    public async Task Init_Info_AndParoTrain_OnAHuggingFaceFolder()
    {
        var model = Path.Combine(_folder, "llama");
        var init = await _kernel.SubmitCodeAsync(
            $"#!model init --arch llama --out {model} --vocabulary 300 --context 64");
        AssertSucceeded(init);
        Assert.Contains(Html(init), h => h.Contains("llama") && h.Contains("Hugging Face folder"));
        Assert.True(File.Exists(Path.Combine(model, "model.safetensors")));

        var info = await _kernel.SubmitCodeAsync($"#!model info --model {model}");
        AssertSucceeded(info);
        // heads / kv heads / head dim
        Assert.Contains(Html(info), h => h.Contains("4 / 2 / 16"));

        var train = await _kernel.SubmitCodeAsync(
            $"#!paro train --model {model} --strategy GGG --layerwise --ranks 2 --group-size 1 --steps 2 " +
                $"--sequence-length 32 --runs-dir {_folder}");
        AssertSucceeded(train);
        Assert.Contains(Html(train), h => h.Contains("PaRO GGG") && h.Contains("loss"));
    }

    [Fact]
    public async Task BadValues_AndRetiredOptions_FailInOneLine_AndTheKernelStaysUsable()
    {
        var arch = Assert.IsType<CommandFailed>((await _kernel.SubmitCodeAsync(
            $"#!model init --arch falcon --out {_folder}/x")).Events.Last());
        Assert.Contains("--arch falcon: must be llama, qwen2, mistral, mixtral or qwen2_moe", arch.Message);
        var input = Path.Combine(_folder, "in.jsonl");
        File.WriteAllText(input, "{\"id\": \"a\", \"text\": \"hello\"}\n");
        var retired
            = Assert.IsType<CommandFailed>((await _kernel.SubmitCodeAsync(
                $"#!infer run --input {input} --gpt-model tiny")).Events.Last());
        Assert.Contains("--gpt-model was replaced by --model", retired.Message);
        var missing
            = Assert.IsType<CommandFailed>((await _kernel.SubmitCodeAsync(
                $"#!paro train --model {_folder}/nothing")).Events.Last());
        Assert.Contains("--model", missing.Message);
        Assert.Contains("is not a model", missing.Message);
        var next = await _kernel.SubmitCodeAsync("1 + 1");
        AssertSucceeded(next);
    }
}
