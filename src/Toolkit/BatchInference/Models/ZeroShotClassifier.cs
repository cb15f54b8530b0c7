using System.Text.Json;

namespace Toolkit.BatchInference;

/// <summary>
/// Zero-shot classification of sentence embeddings: each label is embedded once with MiniLM (the same model as the
/// embed stage) and a record takes the label whose embedding is nearest its own (cosine similarity; both are
/// L2-normalised, so a dot product). It reads another stage's embeddings, so it is the downstream end of a DAG
/// (<c>emb=embed,topic=classify(emb)</c>).
/// </summary>
internal sealed class ZeroShotClassifier : IModelStage
{
    private readonly string[] _labels;
    private readonly float[][] _centres;

    /// <summary>A classifier over <paramref name="labels"/> (at least two, distinct).</summary>
    /// <exception cref="ArgumentException">Fewer than two labels, an empty one, or a repeated one.</exception>
    public ZeroShotClassifier(IReadOnlyList<string> labels, int maxTokens = 128)
    {
        _labels = [.. InferLabels.Check(labels)];
        using var embedding = new MiniLmEmbedding(maxTokens);
        using var replica = embedding.CreateReplica();
        _centres = [.. replica.Predict([.. _labels.Select(embedding.Prepare)]).Cast<float[]>()];
    }

    /// <inheritdoc/>
    public string Name => "classify";

    /// <inheritdoc/>
    public object Prepare(string text)
        => throw new ArgumentException(
            "classify reads another stage's embeddings, not text: declare it with an input, e.g. " +
                "emb=embed,topic=classify(emb)");

    /// <summary>An upstream embedding, checked.</summary>
    public object PrepareVector(object value) => value is float[] { Length: MiniLmEmbedding.Dimensions } v ? v
        : throw new ArgumentException($"classify reads {MiniLmEmbedding.Dimensions}-dimensional embeddings");

    /// <inheritdoc/>
    public IPredictor CreateReplica() => new Replica(this);

    /// <inheritdoc/>
    public void Write(Utf8JsonWriter json, object output)
    {
        var (label, similarity) = ((string, double))output;
        json.WriteString("label", label);
        json.WriteNumber("similarity", similarity);
    }

    /// <inheritdoc/>
    public void Dispose() { }

    private sealed class Replica(ZeroShotClassifier owner) : IPredictor
    {
        public object[] Predict(IReadOnlyList<object> inputs) => [.. inputs.Select(i =>
        {
            var v = (float[])i;
            var (best, score) = (0, double.NegativeInfinity);
            for (var l = 0; l < owner._centres.Length; l++)
            {
                double dot = 0;
                var c = owner._centres[l];
                for (var d = 0; d < v.Length; d++) dot += v[d] * c[d];
                if (dot > score) (best, score) = (l, dot);
            }
            return (object)(owner._labels[best], score);
        })];

        public void Dispose() { }
    }
}
