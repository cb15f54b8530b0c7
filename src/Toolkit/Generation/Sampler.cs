using static TorchSharp.torch;

namespace Toolkit.Generation;

/// <summary>
/// Draws one token per row of logits with temperature and top-p, from a seeded generator (so runs
/// repeat), and returns each token's log-probability under the tempered distribution (before top-p
/// truncation, as inference engines report it): the log π_infer that IcePop compares with the trainer's.
/// </summary>
internal sealed class Sampler(SamplingOptions options, long seed) : IDisposable
{
    private readonly Generator _generator = new((ulong)seed);

    /// <summary>Tokens [A] and their log-probabilities [A] for fp32 logits [A, V].</summary>
    public (long[] Tokens, float[] LogProbs) Sample(Tensor logits)
    {
        using var scope = NewDisposeScope();
        var logp = nn.functional.log_softmax(logits / options.Temperature, -1);              // [A, V]
        var probs = logp.exp();                                                              // [A, V]
        if (options.TopP < 1)
        {
            var (sorted, order) = probs.sort(-1, descending: true);                          // [A, V] each
            var before = sorted.cumsum(-1) - sorted;                                         // mass of the tokens ranked above
            sorted = sorted.masked_fill(before >= options.TopP, 0);                          // keep the smallest set reaching top-p
            probs = zeros_like(probs).scatter(-1, order, sorted);
        }
        var tokens = probs.multinomial(1, generator: _generator);                            // [A, 1]
        var chosen = logp.gather(-1, tokens).squeeze(-1);                                    // [A]
        return (tokens.squeeze(-1).data<long>().ToArray(), chosen.data<float>().ToArray());
    }

    public void Dispose() => _generator.Dispose();
}
