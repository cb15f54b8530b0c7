using Toolkit.LlamaCpp;
using Xunit.Abstractions;
using Toolkit.Models;
using Toolkit.Runtime;
using Toolkit.Tests.Support;
using static TorchSharp.torch;

namespace Toolkit.Tests.Models;

/// <summary>
/// The decoder families against llama.cpp (LLamaSharp 0.30, an implementation not written here): the same random fp32
/// weights, written once as a Hugging Face folder (read by the toolkit) and once as GGUF (read by llama.cpp), must give
/// the same logits at every position to 1e-4, and llama.cpp must tokenise the sentence as the toolkit's tokenizer does.
/// </summary>
public sealed class LlamaCppParityTests(ITestOutputHelper output)
{
    private readonly TorchRuntimeInfo _runtime = TorchRuntime.EnsureInitialized();

    [Theory]
    [InlineData("llama", false)]
    [InlineData("llama", true)]        // Llama 3's rope_scaling (written as llama.cpp's rope_freqs)
    [InlineData("qwen2", false)]       // q/k/v bias, tied output, rotate-half RoPE in llama.cpp too
    [InlineData("mistral", false)]
    [InlineData("mixtral", false)]     // 4 experts, top-2, renormalised
    [InlineData("qwen2_moe", false)]   // 4 experts, top-2 not renormalised, a gated shared expert
    public void Logits_EqualLlamaCpp(string arch, bool llama3Rope)
    {
        using var folder = new TemporaryFolder("parity-");
        var path = TinyModels.Write(folder.Path, arch, o => o with { Llama3Rope = llama3Rope });
        using var hf = HfModel.Open(path);
        var tokens = hf.Tokenizer.EncodeText(TinyModels.Sentence);
        Assert.InRange(tokens.Length, 20, 64);
        float[,] ours;
        using (var model = hf.Load())
        using (no_grad())
        {
            using var logits = model.call(tensor(tokens).unsqueeze(0)).squeeze(0);              // [T, V]
            ours = new float[tokens.Length, hf.Config.VocabularySize];
            var flat = logits.data<float>().ToArray();
            Buffer.BlockCopy(flat, 0, ours, 0, flat.Length * sizeof(float));
        }
        var gguf = Path.Combine(folder.Path, "model.gguf");
        GgufWriter.Write(hf, gguf);
        using var reference = LlamaCppModel.Load(gguf, threads: 2, context: 64);
        var theirs = reference.Logits([.. tokens.Select(t => (int)t)]);
        var worst = 0.0;
        for (var t = 0; t < tokens.Length; t++)
            for (var v = 0; v < hf.Config.VocabularySize; v++) worst = Math.Max(worst, Math.Abs(ours[t,
                v] - theirs[t][v]));
        var spread = Enumerable.Range(0, hf.Config.VocabularySize).Max(v => Math.Abs(ours[tokens.Length - 1, v]));
        Assert.True(spread > 0.5, $"logits too small to compare ({spread:G3})");
        var name = arch + (llama3Rope ? " (llama3 rope)" : "");
        output.WriteLine($"{name}: max |logit difference| {worst:E2} over {tokens.Length} positions x " +
            $"{hf.Config.VocabularySize} logits (largest |logit| {spread:F2})");
        Assert.True(worst <= 1e-4, $"{arch}: max |logit difference| {worst:E2} over {tokens.Length} positions");
        Assert.Equal(tokens.Select(t => (int)t), reference.Tokenize(TinyModels.Sentence, addBos: false));
    }
}
