using System.Text.Json;
using Toolkit.Generation;
using Toolkit.Models;

namespace Toolkit.BatchInference;

/// <summary>
/// Generation as a batch-inference stage: a causal language model (<see cref="StageModel"/>) continues each record's
/// text with the generation engine the RL rollouts use (prefill, KV cache, continuous batching over a pool of slots,
/// temperature and top-p sampling, temperature 0 greedy), stopping at the model's end-of-sequence tokens (a newline for
/// a GPT preset, whose byte tokenizer has none) or after the token budget. The output is the continuation's text
/// (invalid UTF-8 becomes U+FFFD; the stop token left out), its length in tokens and its mean log-probability per
/// token. Sampling is seeded per replica, so a record's continuation depends on the batch it was drawn in: rerunning a
/// shard gives another sample, and the output keeps the one committed.
/// </summary>
internal sealed class GenerateStage : IModelStage
{
    private readonly StageModel _model;
    private readonly SamplingOptions _sampling;
    private readonly int _maxNew, _slots;
    private readonly IReadOnlyList<long> _stop;
    private int _replicas;

    /// <summary>A generator of <paramref name="model"/>.</summary>
    public GenerateStage(StageModel model, SamplingOptions sampling, int maxNewTokens, int slots)
    {
        _model = model;
        (_sampling, _maxNew, _slots) = (sampling.Validate(), maxNewTokens, Math.Max(1, slots));
        _stop = _model.Source.Tokenizer.StopIds();
    }

    /// <summary>The model.</summary>
    public ModelSource Source => _model.Source;

    /// <inheritdoc/>
    public string Name => "generate";

    /// <summary>The prompt's tokens: the text's last tokens that leave room for the continuation in the
    /// context.</summary>
    public object Prepare(string text)
    {
        var tokens = Source.Tokenizer.Encode(text);
        if (tokens.Length == 0) throw new ArgumentException("needs at least 1 token of text to continue");
        var room = Source.Config.ContextLength - _maxNew - 1;
        return tokens.Length <= room ? tokens : tokens[^room..];
    }

    /// <inheritdoc/>
    public IPredictor CreateReplica() => new Replica(this, Interlocked.Increment(ref _replicas));

    /// <inheritdoc/>
    public void Write(Utf8JsonWriter json, object output)
    {
        var (text, tokens, logProb) = ((string, int, double))output;
        json.WriteString("generation", text);
        json.WriteNumber("generation_tokens", tokens);
        json.WriteNumber("generation_logprob", logProb);
    }

    /// <inheritdoc/>
    public void Dispose() { }

    private sealed class Replica : IPredictor
    {
        private readonly GenerationEngine _engine;
        private readonly GenerateStage _owner;

        public Replica(GenerateStage owner, int index)
        {
            _owner = owner;
            _engine = new GenerationEngine(owner.Source.Config, Numerics.Fp32, owner._slots, owner._sampling,
                owner._stop, owner._maxNew, seed: 1000 + index);
            owner._model.LoadInto(_engine);
        }

        public object[] Predict(IReadOnlyList<object> inputs)
        {
            for (var i = 0; i < inputs.Count; i++) _engine.Enqueue(new Sequence(i, (long[])inputs[i]));
            var done = _engine.RunToCompletion().ToDictionary(s => s.Id);
            return [.. Enumerable.Range(0, inputs.Count).Select(i =>
            {
                var s = done[i];
                var tokens = s.EndedAtStop ? s.Tokens.Take(s.Tokens.Count - 1).ToList() : s.Tokens;
                return (object)(_owner.Source.Tokenizer.Decode(tokens), tokens.Count,
                    s.LogProbs.Count == 0 ? 0.0 : s.LogProbs.Average(v => (double)v));
            })];
        }

        public void Dispose() => _engine.Dispose();
    }
}
