using System.Text.Json;
using Toolkit.Models;
using Toolkit.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Toolkit.BatchInference;

/// <summary>
/// Scoring as a batch-inference stage: a causal language model (<see cref="StageModel"/>) gives each record the mean
/// natural-log likelihood per predicted token of its text's tokens (the model's tokenizer, with its BOS; the first
/// context's worth of tokens): a perplexity filter, as used to clean pre-training data. Runs on the device TorchSharp
/// picks (<see cref="Devices"/>); tested on CPU only.
/// </summary>
internal sealed class ScoreStage(StageModel model, int threads = 1) : IModelStage
{
    private readonly StageModel _model = model;

    /// <summary>Positions × vocabulary per forward: rows of a batch are scored in groups that keep the logits under
    /// about 256 MB.</summary>
    private const long LogitBudget = 1L << 26;

    /// <summary>The model.</summary>
    public ModelSource Source => _model.Source;

    /// <inheritdoc/>
    public string Name => "score";

    /// <inheritdoc/>
    public object Prepare(string text)
    {
        var tokens = Source.Tokenizer.Encode(text);
        if (tokens.Length < 2) throw new ArgumentException("needs at least 2 tokens of text to score");
        return tokens.Length <= Source.Config.ContextLength ? tokens : tokens[..Source.Config.ContextLength];
    }

    /// <inheritdoc/>
    public IPredictor CreateReplica() => new Replica(this, threads);

    /// <inheritdoc/>
    public void Write(Utf8JsonWriter json, object output) => json.WriteNumber("score", (double)(float)output);

    /// <inheritdoc/>
    public void Dispose() { }

    private sealed class Replica : IPredictor
    {
        private readonly CausalLanguageModel _model;
        private readonly Device _device = Devices.Resolve("auto").Device;

        public Replica(ScoreStage owner, int threads)
        {
            set_num_threads(threads);
            _model = owner._model.Build();
            _model.to(_device).eval();
        }

        public object[] Predict(IReadOnlyList<object> inputs)
        {
            var rows = inputs.Cast<long[]>().ToList();
            var width = rows.Max(r => r.Length);
            var group = (int)Math.Max(1, LogitBudget / ((long)width * _model.Shape.VocabularySize));
            return [.. rows.Chunk(group).SelectMany(Score).Select(v => (object)v)];
        }

        /// <summary>Mean log p per predicted token of each row (padded to the longest, padding masked out).</summary>
        private float[] Score(long[][] rows)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var width = rows.Max(r => r.Length);
            var tokens = new long[rows.Length * width];
            var mask = new float[rows.Length * (width - 1)];
            for (var r = 0; r < rows.Length; r++)
            {
                rows[r].CopyTo(tokens, r * width);
                for (var t = 0; t < rows[r].Length - 1; t++) mask[r * (width - 1) + t] = 1;
            }
            var x = tensor(tokens, [rows.Length, width], device: _device);
            var logits = _model.call(x[.., ..^1]).to(ScalarType.Float32);                         // [R, W-1, V]
            // [R, W-1]
            var logp = nn.functional.log_softmax(logits, -1).gather(-1, x[.., 1..].unsqueeze(-1)).squeeze(-1);
            var m = tensor(mask, [rows.Length, width - 1], device: _device);
            return (logp * m).sum(1).div(m.sum(1)).cpu().data<float>().ToArray();
        }

        public void Dispose() => _model.Dispose();
    }
}
