using System.Diagnostics;
using Toolkit.Models;
using static TorchSharp.torch;

namespace Toolkit.Generation;

/// <summary>
/// One sequence being generated: its prompt, the tokens generated so far, and for each generated token
/// its log-probability under the engine that sampled it and that engine's weight version. A sequence
/// taken out unfinished (<see cref="GenerationEngine.EvictAll"/>) can be queued again, even on newer
/// weights: its prefix is fed again and generation continues, the older tokens keeping their versions.
/// </summary>
/// <param name="id">The caller's identifier.</param>
/// <param name="prompt">Prompt tokens (at least one).</param>
/// <param name="tag">Anything the caller wants back with it (the problem, the group).</param>
public sealed class Sequence(long id, IReadOnlyList<long> prompt, object? tag = null)
{
    /// <summary>The caller's identifier.</summary>
    public long Id { get; } = id;
    /// <summary>Prompt tokens.</summary>
    public IReadOnlyList<long> Prompt { get; } = prompt.Count > 0 ? prompt : throw new ArgumentException("A prompt needs at least one token.", nameof(prompt));
    /// <summary>The caller's tag.</summary>
    public object? Tag { get; } = tag;
    /// <summary>Generated tokens (the stop token included when it was drawn).</summary>
    public List<long> Tokens { get; } = [];
    /// <summary>log π_infer of each generated token, as sampled.</summary>
    public List<float> LogProbs { get; } = [];
    /// <summary>The weight version that generated each token.</summary>
    public List<int> Versions { get; } = [];
    /// <summary>For a mixture-of-experts model: per generated token, per layer, the experts the engine routed its position to (sorted).</summary>
    public List<int[][]> Routing { get; } = [];
    /// <summary>True once it stopped or hit a length limit.</summary>
    public bool IsFinished { get; internal set; }
    /// <summary>True when it ended at a length limit without the stop token.</summary>
    public bool IsTruncated { get; internal set; }
    /// <summary>Times it was taken out unfinished (C3PO++'s staleness counter is kept by the caller).</summary>
    public int Evictions { get; internal set; }
    internal int Fed;   // tokens of Prompt + Tokens fed into the current slot's cache
    internal long Token(int index) => index < Prompt.Count ? Prompt[index] : Tokens[index - Prompt.Count];
    internal int Length => Prompt.Count + Tokens.Count;
}

/// <summary>
/// A generation engine separate from any trainer: its own copy of the weights in its own numerics, a
/// KV cache over a pool of slots, continuous batching (finished sequences leave and queued ones join
/// between decode steps), seeded temperature/top-p sampling, a stop token and a length limit, and the
/// log-probability of every sampled token. RL rollouts and batch-inference generation both use it.
/// </summary>
public sealed class GenerationEngine : IDisposable
{
    private readonly GptConfig _config;
    private readonly Numerics _numerics;
    private readonly Device _device;
    private readonly Sampler _sampler;
    private readonly long _stop;
    private readonly int _maxTokens;
    private readonly Sequence?[] _slots;
    private readonly Queue<Sequence> _queue = new();
    private GptWeights? _weights;
    private GptDecoder? _decoder;

    /// <summary>Creates an engine with no weights yet (<see cref="LoadWeights"/>).</summary>
    /// <param name="config">The GPT's shape.</param>
    /// <param name="numerics">How the engine stores weights and computes.</param>
    /// <param name="slots">Sequences decoded at once (the pool capacity).</param>
    /// <param name="sampling">Temperature and top-p.</param>
    /// <param name="stopToken">The token that ends a sequence.</param>
    /// <param name="maxTokens">Most tokens generated per sequence (the stop token included).</param>
    /// <param name="seed">Seed of the sampler.</param>
    /// <param name="device">Where it runs (default CPU).</param>
    public GenerationEngine(GptConfig config, Numerics numerics, int slots, SamplingOptions sampling, long stopToken, int maxTokens, long seed, Device? device = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slots, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        (_config, _numerics, _device, _stop, _maxTokens) = (config.Validate(), numerics, device ?? CPU, stopToken, maxTokens);
        _sampler = new Sampler(sampling.Validate(), seed);
        _slots = new Sequence?[slots];
    }

    /// <summary>The weight version loaded last.</summary>
    public int Version { get; private set; } = -1;

    /// <summary>The pool's capacity: sequences decoded at once.</summary>
    public int Slots => _slots.Length;

    /// <summary>Sequences in slots.</summary>
    public int InFlight => _slots.Count(s => s is not null);

    /// <summary>Sequences waiting for a slot.</summary>
    public int Queued => _queue.Count;

    /// <summary>Tokens sampled so far (generated tokens).</summary>
    public long SampledTokens { get; private set; }

    /// <summary>Tokens fed again from a prefix (prompts, and the generated part of resumed sequences).</summary>
    public long PrefixTokens { get; private set; }

    /// <summary>Replaces the weights (a flat fp32 vector in module order, what the trainer sends) and the version tagged on new tokens; sequences in flight are fed again under the new weights.</summary>
    /// <returns>The bytes received and the seconds the conversion took.</returns>
    public (long Bytes, double Seconds) LoadWeights(ReadOnlySpan<float> flat, int version)
    {
        var clock = Stopwatch.StartNew();
        var weights = GptWeights.Load(_config, flat, _numerics, _device);
        _decoder?.Dispose();
        _weights?.Dispose();
        _weights = weights;
        _decoder = new GptDecoder(weights, _slots.Length);
        foreach (var s in _slots) if (s is not null) s.Fed = 0;   // the old cache belongs to the old weights
        Version = version;
        return ((long)flat.Length * sizeof(float), clock.Elapsed.TotalSeconds);
    }

    /// <summary>Queues a sequence; it joins a slot at the next step with one free.</summary>
    /// <exception cref="ArgumentException">Its prefix does not fit the context length.</exception>
    public void Enqueue(Sequence sequence)
    {
        if (sequence.Length >= _config.ContextLength)
            throw new ArgumentException($"Sequence {sequence.Id} has {sequence.Length} tokens; the context holds {_config.ContextLength}.", nameof(sequence));
        sequence.Fed = 0;
        _queue.Enqueue(sequence);
    }

    /// <summary>One decode step over every sequence in a slot; returns those that finished in it.</summary>
    /// <exception cref="InvalidOperationException">No weights were loaded.</exception>
    public IReadOnlyList<Sequence> Step()
    {
        var decoder = _decoder ?? throw new InvalidOperationException("Load weights before generating.");
        for (var i = 0; i < _slots.Length && _queue.Count > 0; i++) _slots[i] ??= _queue.Dequeue();
        var active = Enumerable.Range(0, _slots.Length).Where(i => _slots[i] is not null).ToArray();
        if (active.Length == 0) return [];
        var sequences = active.Select(i => _slots[i]!).ToArray();
        using var logits = decoder.Step([.. active.Select(i => (long)i)], [.. sequences.Select(s => s.Token(s.Fed))], [.. sequences.Select(s => (long)s.Fed)]);   // [A, V]
        foreach (var s in sequences) s.Fed++;
        var sampling = Enumerable.Range(0, sequences.Length).Where(r => sequences[r].Fed == sequences[r].Length).ToArray();
        PrefixTokens += sequences.Length - sampling.Length;
        var finished = new List<Sequence>();
        if (sampling.Length > 0)
        {
            using var index = tensor(sampling.Select(r => (long)r).ToArray());
            using var rows = logits.index_select(0, index);                                            // [R, V]
            var (tokens, logProbs) = _sampler.Sample(rows);
            for (var k = 0; k < sampling.Length; k++)
            {
                var s = sequences[sampling[k]];
                s.Tokens.Add(tokens[k]);
                s.LogProbs.Add(logProbs[k]);
                s.Versions.Add(Version);
                if (decoder.LastRouting.Length > 0) s.Routing.Add([.. decoder.LastRouting.Select(layer => layer[sampling[k]])]);
                SampledTokens++;
                if (tokens[k] != _stop && s.Tokens.Count < _maxTokens && s.Length < _config.ContextLength) continue;
                (s.IsFinished, s.IsTruncated) = (true, tokens[k] != _stop);
                _slots[active[sampling[k]]] = null;
                finished.Add(s);
            }
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

    /// <summary>Takes every unfinished sequence out (in flight, then queued), e.g. at a token budget; each keeps what it generated.</summary>
    public IReadOnlyList<Sequence> EvictAll()
    {
        var evicted = new List<Sequence>();
        for (var i = 0; i < _slots.Length; i++)
            if (_slots[i] is { } s)
            {
                s.Evictions++;
                evicted.Add(s);
                _slots[i] = null;
            }
        while (_queue.Count > 0) evicted.Add(_queue.Dequeue());
        return evicted;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _decoder?.Dispose();
        _weights?.Dispose();
        _sampler.Dispose();
    }
}
