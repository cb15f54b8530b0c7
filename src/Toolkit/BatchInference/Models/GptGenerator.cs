using System.Text.Json;
using Toolkit.Data;
using Toolkit.Generation;
using Toolkit.Models;
using Toolkit.Runtime;

namespace Toolkit.BatchInference;

/// <summary>
/// Generation as a batch-inference stage: the toolkit's GPT (byte vocabulary) continues each record's text with
/// the generation engine the RL rollouts use (KV cache, continuous batching over a pool of slots, temperature and
/// top-p sampling), stopping at a newline or after the byte budget. The output is the continuation's text (bytes
/// that are not valid UTF-8 become U+FFFD), its length in bytes and its mean log-probability per byte. Sampling is seeded per replica, so a record's continuation depends on the
/// batch it was drawn in: rerunning a shard gives another sample, and the output keeps the one committed.
/// </summary>
public sealed class GptGenerator : IModelStage
{
    private const long Newline = '\n';
    private readonly GptStageWeights _weights;
    private readonly SamplingOptions _sampling;
    private readonly int _maxNew, _slots;
    private int _replicas;

    /// <summary>A generator of <paramref name="config"/> with the weights of <paramref name="checkpoint"/> (or initialised from <paramref name="seed"/>).</summary>
    public GptGenerator(GptConfig config, string? checkpoint, SamplingOptions sampling, int maxNewTokens, int slots, int seed = 1)
    {
        TorchRuntime.EnsureInitialized();
        (Config, _sampling, _maxNew, _slots) = (config, sampling.Validate(), maxNewTokens, Math.Max(1, slots));
        _weights = new GptStageWeights(config, checkpoint, seed);
    }

    /// <summary>The model's shape.</summary>
    public GptConfig Config { get; }

    /// <inheritdoc/>
    public string Name => "generate";

    /// <summary>The prompt's bytes: the text's last bytes that leave room for the continuation in the context.</summary>
    public object Prepare(string text)
    {
        var bytes = ByteTokenizer.Encode(text);
        if (bytes.Length == 0) throw new ArgumentException("needs at least 1 byte of text to continue");
        var room = Config.ContextLength - _maxNew - 1;
        return (bytes.Length <= room ? bytes : bytes[^room..]).Select(b => (long)b).ToArray();
    }

    /// <inheritdoc/>
    public IPredictor CreateReplica() => new Replica(this, Interlocked.Increment(ref _replicas));

    /// <inheritdoc/>
    public void Write(Utf8JsonWriter json, object output)
    {
        var (text, bytes, logProb) = ((string, int, double))output;
        json.WriteString("generation", text);
        json.WriteNumber("generation_bytes", bytes);
        json.WriteNumber("generation_logprob", logProb);
    }

    /// <inheritdoc/>
    public void Dispose() { }

    private sealed class Replica : IPredictor
    {
        private readonly GenerationEngine _engine;

        public Replica(GptGenerator owner, int index)
        {
            _engine = new GenerationEngine(owner.Config, Numerics.Fp32, owner._slots, owner._sampling, [Newline], owner._maxNew, seed: 1000 + index);
            _engine.LoadWeights(owner._weights.Flat, 0);
        }

        public object[] Predict(IReadOnlyList<object> inputs)
        {
            for (var i = 0; i < inputs.Count; i++) _engine.Enqueue(new Sequence(i, (long[])inputs[i]));
            var done = _engine.RunToCompletion().ToDictionary(s => s.Id);
            return [.. Enumerable.Range(0, inputs.Count).Select(i =>
            {
                var s = done[i];
                var tokens = s.Tokens.Count > 0 && s.Tokens[^1] == Newline && !s.IsTruncated ? s.Tokens.Take(s.Tokens.Count - 1).ToList() : s.Tokens;
                return (object)(ByteTokenizer.Decode(tokens), tokens.Count, s.LogProbs.Count == 0 ? 0.0 : s.LogProbs.Average(v => (double)v));
            })];
        }

        public void Dispose() => _engine.Dispose();
    }
}
