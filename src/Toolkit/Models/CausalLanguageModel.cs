using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>
/// A causal language model the toolkit trains and scores: token ids [B, T] to next-token logits [B, T, V], run block by
/// block (<see cref="ILayeredModule"/>) so sharded training can gather one block at a time. The toolkit's GPT
/// (<see cref="Gpt"/>) and the Hugging Face decoder families (<see cref="Decoder"/>) are its two implementations.
/// </summary>
public abstract class CausalLanguageModel : nn.Module<Tensor, Tensor>, ILayeredModule
{
    /// <summary>Names the module (TorchSharp's native runtime is made ready first: every model is built through
    /// here).</summary>
    protected CausalLanguageModel(string name) : base(Ready(name)) { }

    private static string Ready(string name)
    {
        Runtime.TorchRuntime.EnsureInitialized();
        return name;
    }

    /// <summary>
    /// A model of <paramref name="config"/> whose values are still to be filled: a decoder's placeholders in
    /// <paramref name="dtype"/> (shapes, no memory), or a GPT (fp32, default-initialised).
    /// </summary>
    public static CausalLanguageModel Unfilled(IModelConfig config, ScalarType dtype = ScalarType.Float32) =>
        config switch
        {
            DecoderConfig d => Decoder.Placeholder(d, dtype),
            GptConfig g => new Gpt(g),
            _ => throw new ArgumentException($"unknown config {config.GetType().Name}", nameof(config)),
        };

    /// <summary>The model's shape.</summary>
    public abstract IModelConfig Shape { get; }

    /// <summary>The sparse mixture-of-experts layers, in block order (empty for a dense model).</summary>
    public abstract IReadOnlyList<IExpertLayer> ExpertLayers { get; }

    /// <inheritdoc/>
    public abstract IReadOnlyList<nn.Module<Tensor, Tensor>> Blocks { get; }

    /// <inheritdoc/>
    public Func<int, Tensor, Tensor>? BlockRunner { get; set; }

    /// <inheritdoc/>
    public virtual string? TiedOutput => null;

    /// <inheritdoc/>
    public Tensor? TiedOutputAlias { get; set; }

    /// <summary>The load-balancing loss of the last forward, summed over the expert layers (null for a dense
    /// model).</summary>
    public Tensor? LoadBalancingLoss() => ExpertLayers.Count == 0 ? null : ExpertLayers.Select(e
        => e.LastLoadBalancingLoss!).Aggregate((a, b) => a + b);

    /// <summary>Mean next-token cross-entropy of a batch (computed in fp32 whatever the model's dtype).</summary>
    /// <param name="tokens">Inputs [B, T].</param>
    /// <param name="targets">Next tokens [B, T] (−100 where no loss).</param>
    public Tensor Loss(Tensor tokens, Tensor targets)
    {
        var logits = call(tokens).to(ScalarType.Float32);                          // [B, T, V]
        return nn.functional.cross_entropy(logits.view(-1, logits.shape[^1]), targets.view(-1), ignore_index: -100);
    }

    /// <summary>Runs block <paramref name="index"/> through the trainer's runner when one is set.</summary>
    protected Tensor RunBlock(int index, Tensor x) => BlockRunner is { } run ? run(index, x) : Blocks[index].call(x);

    /// <summary>Refuses a sequence longer than the context.</summary>
    protected void CheckLength(Tensor tokens)
    {
        if (tokens.shape[1] > Shape.ContextLength)
            throw new ArgumentException(
                $"Sequence length {tokens.shape[1]} exceeds the context length {Shape.ContextLength}.", nameof(tokens));
    }
}
