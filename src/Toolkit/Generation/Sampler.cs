using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.Generation;

/// <summary>
/// Draws one token per row of logits with temperature and top-p, from a seeded generator (so runs repeat), and returns
/// each token's log-probability under the tempered distribution (before top-p truncation, as inference engines report
/// it): the log π_infer that IcePop compares with the trainer's. Temperature 0 is greedy decoding: the most likely
/// token, with its log-probability under the model's distribution.
/// </summary>
internal sealed class Sampler(SamplingOptions options, long seed) : IDisposable
{
    private readonly Generator _generator = new((ulong)seed);
    // Scalars live as long as the sampler. An implicitly converted Scalar is a temporary that the GC may
    // finalise while the native call still reads it (seen in CI as a libtorch "Expected false to be true"
    // from Scalar::toFloat inside masked_fill); fields keep them alive across every call.
    private readonly Scalar _temperature = (options.Temperature > 0 ? options.Temperature : 1.0).ToScalar();
    private readonly Scalar _topP = options.TopP.ToScalar();
    private readonly Scalar _zero = 0.0f.ToScalar();

    /// <summary>The generator's state: saved with a run's checkpoint, it makes a resumed run draw what the
    /// uninterrupted one drew.</summary>
    public byte[] State
    {
        get
        {
            using var state = _generator.get_state();
            return state.data<byte>().ToArray();
        }
        set
        {
            using var state = tensor(value);
            _generator.set_state(state);
        }
    }

    /// <summary>Tokens [A] and their log-probabilities [A] for fp32 logits [A, V].</summary>
    public (long[] Tokens, float[] LogProbs) Sample(Tensor logits)
    {
        using var scope = NewDisposeScope();
        var logp = nn.functional.log_softmax(logits.div(_temperature), -1);                  // [A, V]
        if (options.Temperature == 0)
        {
            var best = logp.argmax(-1, keepdim: true);                                       // [A, 1]
            return (best.squeeze(-1).data<long>().ToArray(), logp.gather(-1, best).squeeze(-1).data<float>().ToArray());
        }
        var probs = logp.exp();                                                              // [A, V]
        if (options.TopP < 1)
        {
            var (sorted, order) = probs.sort(-1, descending: true);                          // [A, V] each
            // mass of the tokens ranked above
            var before = sorted.cumsum(-1) - sorted;
            // keep the smallest set reaching top-p
            sorted = sorted.masked_fill(before.ge(_topP), _zero);
            probs = zeros_like(probs).scatter(-1, order, sorted);
        }
        var tokens = probs.multinomial(1, generator: _generator);                            // [A, 1]
        var chosen = logp.gather(-1, tokens).squeeze(-1);                                    // [A]
        return (tokens.squeeze(-1).data<long>().ToArray(), chosen.data<float>().ToArray());
    }

    public void Dispose()
    {
        _generator.Dispose();
        _temperature.Dispose();
        _topP.Dispose();
        _zero.Dispose();
    }
}
