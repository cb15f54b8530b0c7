using System.Diagnostics;
using Toolkit.Models;
using static TorchSharp.torch;

namespace Toolkit.Generation;

/// <summary>
/// A generation engine separate from any trainer: its own copy of the weights in its own numerics, a KV cache over a
/// pool of slots, continuous batching (finished sequences leave and queued ones join between steps), a prefill of each
/// joining sequence's prompt in one forward beside the others' decode (gpt-fast's prefill and decode in one batch),
/// seeded temperature/top-p sampling, stop tokens and a length limit, and the log-probability of every sampled token.
/// RL rollouts and batch-inference generation both use it, for the toolkit's GPT and the Hugging Face families alike.
/// </summary>
public sealed class GenerationEngine : IDisposable
{
    /// <summary>Most prompt tokens one sequence feeds in one step (longer prefixes take several steps).</summary>
    public const int PrefillChunk = 512;

    private readonly IModelConfig _config;
    private readonly Numerics _numerics;
    private readonly Device _device;
    private readonly Sampler _sampler;
    private readonly HashSet<long> _stop;
    private readonly int _maxTokens;
    private readonly bool _routerFp32;
    private readonly Sequence?[] _slots;
    private readonly Queue<Sequence> _queue = new();
    private EngineWeights? _weights;
    private IncrementalDecoder? _decoder;

    /// <summary>Creates an engine with no weights yet
    /// (<see cref="LoadWeights(ReadOnlySpan{float}, int, bool)"/>).</summary>
    /// <param name="config">The model's shape.</param>
    /// <param name="numerics">How the engine stores weights and computes.</param>
    /// <param name="slots">Sequences decoded at once (the pool capacity).</param>
    /// <param name="sampling">Temperature and top-p.</param>
    /// <param name="stopTokens">Tokens that end a sequence (the model's EOS ids, or a task's stop token).</param>
    /// <param name="maxTokens">Most tokens generated per sequence (the stop token included).</param>
    /// <param name="seed">Seed of the sampler.</param>
    /// <param name="device">Where it runs (default CPU).</param>
    /// <param name="context">Longest sequence (prompt and generation) the cache holds; default the model's
    /// context.</param>
    /// <param name="routerFp32">Route MoE tokens in fp32, as the trainer does, instead of in the engine's compute
    /// type (what serving engines do).</param>
    public GenerationEngine(IModelConfig config, Numerics numerics, int slots, SamplingOptions sampling,
        IReadOnlyCollection<long> stopTokens,
        int maxTokens, long seed, Device? device = null, int? context = null, bool routerFp32 = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slots, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        config.Check();
        (_config, _numerics, _device, _stop, _maxTokens, _routerFp32) = (config, numerics, device ?? CPU,
            [.. stopTokens], maxTokens, routerFp32);
        Context = Math.Min(config.ContextLength, context ?? config.ContextLength);
        ArgumentOutOfRangeException.ThrowIfLessThan(Context, 2, nameof(context));
        _sampler = new Sampler(sampling.Validate(), seed);
        _slots = new Sequence?[slots];
    }

    /// <summary>The weight version loaded last.</summary>
    public int Version { get; private set; } = -1;

    /// <summary>The pool's capacity: sequences decoded at once.</summary>
    public int Slots => _slots.Length;

    /// <summary>Longest sequence the cache holds.</summary>
    public int Context { get; }

    /// <summary>Sequences in slots.</summary>
    public int InFlight => _slots.Count(s => s is not null);

    /// <summary>Sequences waiting for a slot.</summary>
    public int Queued => _queue.Count;

    /// <summary>Tokens sampled so far (generated tokens).</summary>
    public long SampledTokens { get; private set; }

    /// <summary>Tokens fed again from a prefix (prompts, and the generated part of resumed sequences).</summary>
    public long PrefixTokens { get; private set; }

    /// <summary>Seconds spent in steps that fed a prefix (a prompt, or a resumed sequence's tokens), with the decode
    /// rows that shared their forward.</summary>
    public double PrefillSeconds { get; private set; }

    /// <summary>Seconds spent in steps that only decoded (one token per sequence).</summary>
    public double DecodeSeconds { get; private set; }

    /// <summary>Bytes the engine's weights occupy.</summary>
    public long WeightBytes => _weights?.Bytes ?? 0;

    /// <summary>
    /// Replaces the weights with a flat fp32 vector in module order (what the trainer sends) and sets the version
    /// tagged on new tokens; sequences in flight are fed again under the new weights, or with
    /// <paramref name="keepCache"/> go on from the keys and values the old weights cached (an in-flight weight
    /// update, PipelineRL's).
    /// </summary>
    /// <returns>The bytes received and the seconds the conversion took.</returns>
    public (long Bytes, double Seconds) LoadWeights(ReadOnlySpan<float> flat, int version, bool keepCache = false)
    {
        var clock = Stopwatch.StartNew();
        Replace(EngineWeights.FromFlat(_config, flat, _numerics, _device, _routerFp32), version, keepCache);
        return ((long)flat.Length * sizeof(float), clock.Elapsed.TotalSeconds);
    }

    /// <summary>Loads a Hugging Face folder's weights (one tensor at a time) as version
    /// <paramref name="version"/>.</summary>
    /// <exception cref="ArgumentException">The folder's shape is not the engine's.</exception>
    public void LoadWeights(HfModel model, int version)
    {
        if (!model.Config.Equals(_config)) throw new ArgumentException(
            $"The folder holds {model.Config}; the engine was made for {_config}.", nameof(model));
        Replace(EngineWeights.FromFolder(model, _numerics, _device, _routerFp32), version);
    }

    private void Replace(EngineWeights weights, int version, bool keepCache = false)
    {
        if (keepCache && _decoder is not null)
        {
            try { _decoder.Swap(weights); }
            catch
            {
                weights.Dispose();
                throw;
            }
            _weights?.Dispose();
            (_weights, Version) = (weights, version);
            return;
        }
        _decoder?.Dispose();
        _weights?.Dispose();
        _weights = weights;
        _decoder = weights.Config is GptConfig ? new GptDecoder(weights, _slots.Length,
            Context) : new LlamaDecoder(weights, _slots.Length, Context);
        foreach (var s in _slots) if (s is not null) s.Fed = 0;   // the old cache belongs to the old weights
        Version = version;
    }

    /// <summary>Queues a sequence; it joins a slot at the next step with one free.</summary>
    /// <exception cref="ArgumentException">Its prefix does not fit the context.</exception>
    public void Enqueue(Sequence sequence)
    {
        if (sequence.Length >= Context)
            throw new ArgumentException(
                $"Sequence {sequence.Id} has {sequence.Length} tokens; the context holds {Context}.", nameof(sequence));
        sequence.Fed = 0;
        _queue.Enqueue(sequence);
    }

    /// <summary>
    /// One forward over every sequence in a slot: each feeds the tokens it has not fed yet (a joining sequence its
    /// prompt, up to <see cref="PrefillChunk"/>; the others their last sampled token) and samples its next token;
    /// returns those that finished.
    /// </summary>
    /// <exception cref="InvalidOperationException">No weights were loaded.</exception>
    public IReadOnlyList<Sequence> Step()
    {
        var decoder = _decoder ?? throw new InvalidOperationException("Load weights before generating.");
        for (var i = 0; i < _slots.Length && _queue.Count > 0; i++) _slots[i] ??= _queue.Dequeue();
        var active = Enumerable.Range(0, _slots.Length).Where(i => _slots[i] is not null).ToArray();
        if (active.Length == 0) return [];
        var clock = Stopwatch.StartNew();
        var sequences = active.Select(i => _slots[i]!).ToArray();
        var chunks = new Chunk[active.Length];
        for (var a = 0; a < active.Length; a++)
        {
            var s = sequences[a];
            var count = Math.Min(PrefillChunk, s.Length - s.Fed);
            chunks[a] = new Chunk(active[a], [.. Enumerable.Range(s.Fed, count).Select(s.Token)], s.Fed);
            s.Fed += count;
            PrefixTokens += count - (s.Fed == s.Length ? 1 : 0);
        }
        using var logits = decoder.Forward(chunks);                                                  // [A, V]
        var sampling = Enumerable.Range(0, sequences.Length)
            .Where(r => sequences[r].Fed == sequences[r].Length).ToArray();
        IReadOnlyList<Sequence> finished = sampling.Length == 0 ? []
            : Sample(logits, sequences, active, sampling, decoder.LastRouting);
        if (chunks.Any(c => c.Tokens.Length > 1)) PrefillSeconds += clock.Elapsed.TotalSeconds;
        else DecodeSeconds += clock.Elapsed.TotalSeconds;
        return finished;
    }

    private List<Sequence> Sample(Tensor logits, Sequence[] sequences, int[] active, int[] sampling, int[][][] routing)
    {
        using var index = tensor(sampling.Select(r => (long)r).ToArray());
        using var rows = logits.index_select(0, index);                                              // [R, V]
        var (tokens, logProbs) = _sampler.Sample(rows);
        var finished = new List<Sequence>();
        for (var k = 0; k < sampling.Length; k++)
        {
            var s = sequences[sampling[k]];
            s.Tokens.Add(tokens[k]);
            s.LogProbs.Add(logProbs[k]);
            s.Versions.Add(Version);
            if (routing.Length > 0) s.Routing.Add([.. routing.Select(layer => layer[sampling[k]])]);
            SampledTokens++;
            if (!_stop.Contains(tokens[k]) && s.Tokens.Count < _maxTokens && s.Length < Context) continue;
            (s.IsFinished, s.IsTruncated) = (true, !_stop.Contains(tokens[k]));
            _slots[active[sampling[k]]] = null;
            finished.Add(s);
        }
        return finished;
    }

    /// <summary>Steps until every queued and in-flight sequence finished; returns them in finishing order.</summary>
    public IReadOnlyList<Sequence> RunToCompletion()
    {
        var done = new List<Sequence>();
        while (InFlight + Queued > 0) done.AddRange(Step());
        return done;
    }

    /// <summary>Takes every unfinished sequence out (in flight, then queued), e.g. at a token budget; each keeps what
    /// it generated.</summary>
    public IReadOnlyList<Sequence> EvictAll() => EvictWhere(_ => true);

    /// <summary>Takes the unfinished sequences <paramref name="which"/> selects out (in flight, then queued); each
    /// keeps what it generated.</summary>
    public IReadOnlyList<Sequence> EvictWhere(Func<Sequence, bool> which)
    {
        var evicted = new List<Sequence>();
        for (var i = 0; i < _slots.Length; i++)
            if (_slots[i] is { } s && which(s))
            {
                s.Evictions++;
                evicted.Add(s);
                _slots[i] = null;
            }
        var kept = _queue.Where(s => !which(s)).ToList();
        evicted.AddRange(_queue.Where(which));
        _queue.Clear();
        foreach (var s in kept) _queue.Enqueue(s);
        return evicted;
    }

    /// <summary>The unfinished sequences, in flight (by slot) then queued.</summary>
    public IReadOnlyList<Sequence> Pending => [.. _slots.OfType<Sequence>(), .. _queue];

    /// <summary>The sampler's random state (see <see cref="Sampler.State"/>).</summary>
    public byte[] SamplerState
    {
        get => _sampler.State;
        set => _sampler.State = value;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _decoder?.Dispose();
        _weights?.Dispose();
        _sampler.Dispose();
    }
}
