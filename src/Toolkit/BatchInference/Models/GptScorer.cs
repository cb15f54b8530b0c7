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
/// as used to clean pre-training data). The weights come from a PaRO checkpoint (<see cref="GptStageWeights"/>)
/// or, without one, from the preset initialised with a seed; each replica holds its own copy, so every replica
/// and every worker scores identically. Runs on the device TorchSharp picks (<see cref="Devices"/>); tested on CPU only.
/// </summary>
public sealed class GptScorer : IModelStage
{
    private readonly int _threads;
    private readonly GptStageWeights _weights;

    /// <summary>A scorer of <paramref name="config"/> (default the small preset) with the weights of <paramref name="checkpoint"/>, or initialised from <paramref name="seed"/>.</summary>
    public GptScorer(int threads = 1, GptConfig? config = null, int seed = 1, string? checkpoint = null)
    {
        TorchRuntime.EnsureInitialized();
        (_threads, Config, Seed) = (threads, config ?? GptConfig.Small, seed);
        _weights = new GptStageWeights(Config, checkpoint, seed);
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

        public Replica(GptScorer owner)
        {
            set_num_threads(owner._threads);
            _model = owner._weights.Build();
            _model.to(_device).eval();
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

/// <summary>
/// The GPT weights the batch-inference stages use, read once per worker: a PaRO checkpoint's parameters (any
/// strategy, rank count or precision: <see cref="Paro.CheckpointManifest.ReadParameters"/>), or the preset
/// initialised from a seed.
/// </summary>
public sealed class GptStageWeights(GptConfig config, string? checkpoint, int seed)
{
    private static readonly Lock Building = new();
    private readonly Lazy<float[]> _flat = new(() => Read(config, checkpoint, seed));

    /// <summary>The flat fp32 parameters in module order.</summary>
    public float[] Flat => _flat.Value;

    /// <summary>A new module holding these weights.</summary>
    public Gpt Build()
    {
        var flat = Flat;
        Gpt model;
        lock (Building) model = new Gpt(config);   // construction draws from the process-wide generator
        using var _ = no_grad();
        long offset = 0;
        foreach (var p in model.parameters())
        {
            using var values = tensor(flat.AsSpan((int)offset, (int)p.numel()).ToArray(), p.shape);
            p.copy_(values);
            offset += p.numel();
        }
        if (offset != flat.Length) throw new InvalidDataException($"the GPT has {offset} parameters, the weights {flat.Length}");
        return model;
    }

    private static float[] Read(GptConfig config, string? checkpoint, int seed)
    {
        if (checkpoint is not null) return Paro.CheckpointManifest.ReadParameters(checkpoint);
        // The seed and the generator are process-wide: models built at once would interleave their draws. One at a time.
        lock (Building)
        {
            using var scope = NewDisposeScope();
            using var model = Gpt.Create(config, seed);
            return [.. model.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray())];
        }
    }
}
