using System.Text.Json;
using TorchSharp;
using Toolkit.Data;
using Toolkit.Models;
using Toolkit.Runtime;
using static TorchSharp.torch;

namespace Toolkit.BatchInference;

/// <summary>
/// A second, TorchSharp model for multi-model pipelines: the toolkit's GPT (byte vocabulary) scoring each
/// record by the mean log-likelihood per byte of its first <c>ContextLength</c> bytes (a perplexity filter,
/// as used to clean pre-training data). Each replica holds its own copy of the weights, initialised from the
/// same seed so every replica and every worker scores identically. Runs on the device TorchSharp picks
/// (<see cref="Devices"/>); tested on CPU only.
/// </summary>
public sealed class GptScorer : IModelStage
{
    private readonly int _threads;

    /// <summary>A scorer of <paramref name="config"/> (default the small preset) initialised from <paramref name="seed"/>.</summary>
    public GptScorer(int threads = 1, GptConfig? config = null, int seed = 1)
    {
        TorchRuntime.EnsureInitialized();
        (_threads, Config, Seed) = (threads, config ?? GptConfig.Small, seed);
    }

    /// <summary>The model's shape.</summary>
    public GptConfig Config { get; }

    /// <summary>The initialisation seed.</summary>
    public int Seed { get; }

    /// <inheritdoc/>
    public string Name => "score";

    /// <inheritdoc/>
    public object Prepare(string text)
    {
        var bytes = ByteTokenizer.Encode(text);
        if (bytes.Length < 2) throw new ArgumentException("needs at least 2 bytes of text to score");
        return bytes.Length <= Config.ContextLength ? bytes : bytes[..Config.ContextLength];
    }

    /// <inheritdoc/>
    public IPredictor CreateReplica() => new Replica(this);

    /// <inheritdoc/>
    public void Write(Utf8JsonWriter json, object output) => json.WriteNumber("score", (double)(float)output);

    /// <inheritdoc/>
    public void Dispose() { }

    private sealed class Replica : IPredictor
    {
        private readonly Gpt _model;
        private readonly Device _device = Devices.Resolve("auto").Device;

        private static readonly Lock Building = new();

        public Replica(GptScorer owner)
        {
            // The seed and the generator are process-wide: replicas built at once would interleave their draws and
            // get different weights. One at a time, each gets exactly the seed's weights.
            lock (Building)
            {
                set_num_threads(owner._threads);
                using (var _ = NewDisposeScope())
                {
                    manual_seed(owner.Seed);
                    _model = new Gpt(owner.Config);
                }
                _model.to(_device).eval();
            }
        }

        public object[] Predict(IReadOnlyList<object> inputs)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var rows = inputs.Count;
            var width = inputs.Max(b => ((byte[])b).Length);
            var tokens = new long[rows * width];
            var mask = new float[rows * (width - 1)];
            for (var r = 0; r < rows; r++)
            {
                var bytes = (byte[])inputs[r];
                for (var t = 0; t < bytes.Length; t++) tokens[r * width + t] = bytes[t];
                for (var t = 0; t < bytes.Length - 1; t++) mask[r * (width - 1) + t] = 1;
            }
            var x = tensor(tokens, [rows, width], device: _device);
            var logits = _model.call(x[.., ..^1]);                                       // [rows, width-1, V]
            var logp = nn.functional.log_softmax(logits, -1).gather(-1, x[.., 1..].unsqueeze(-1)).squeeze(-1);
            var m = tensor(mask, [rows, width - 1], device: _device);
            var mean = ((logp * m).sum(1) / m.sum(1)).cpu().data<float>().ToArray();
            return [.. mean.Select(v => (object)v)];
        }

        public void Dispose() => _model.Dispose();
    }
}
