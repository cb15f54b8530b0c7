using System.Text.Json;

namespace Toolkit.BatchInference;

/// <summary>A record travelling through a worker's pipeline: what was read, what each model added, or why it failed.</summary>
public sealed class WorkItem(long shard, InputRecord record)
{
    /// <summary>The shard it belongs to.</summary>
    public long Shard { get; } = shard;
    /// <summary>The input record.</summary>
    public InputRecord Record { get; } = record;
    /// <summary>Why it is quarantined (malformed, or a stage failed on it alone), or null.</summary>
    public string? Error { get; set; } = record.Error;
    /// <summary>Each model's prepared input (tokens), by model.</summary>
    public object?[] Prepared { get; set; } = [];
    /// <summary>Each model's output, by model.</summary>
    public object?[] Outputs { get; set; } = [];
    /// <summary>The lease (the worker's buffer for it) the record was read for.</summary>
    internal object? Owner { get; init; }
}

/// <summary>
/// A model stage of the pipeline: CPU preprocessing of one record (thread-safe, run on the preprocess stage),
/// predictor replicas (each its own session, used by one task at a time), and how its output is written.
/// </summary>
public interface IModelStage : IDisposable
{
    /// <summary>The stage's name in metrics and output (e.g. <c>embed</c>).</summary>
    string Name { get; }

    /// <summary>Preprocesses one record's text (tokenisation); throws when the record cannot be used.</summary>
    object Prepare(string text);

    /// <summary>Creates one predictor replica.</summary>
    IPredictor CreateReplica();

    /// <summary>Writes this model's output for one record as properties of the output object.</summary>
    void Write(Utf8JsonWriter json, object output);
}

/// <summary>One predictor replica: a model session that predicts a batch at a time.</summary>
public interface IPredictor : IDisposable
{
    /// <summary>Predicts the batch's prepared inputs; one output per input, in order.</summary>
    object[] Predict(IReadOnlyList<object> inputs);
}

/// <summary>Creates the model stages a job spec names.</summary>
public static class ModelStages
{
    /// <summary>The stages of <paramref name="spec"/>'s pipeline, in order.</summary>
    public static IReadOnlyList<IModelStage> Create(InferJobOptions spec) => spec.Pipeline switch
    {
        InferPipeline.Embed => [new MiniLmEmbedding(spec.MaxTokens, spec.Threads)],
        InferPipeline.Score => [Scorer(spec)],
        InferPipeline.EmbedAndScore => [new MiniLmEmbedding(spec.MaxTokens, spec.Threads), Scorer(spec)],
        InferPipeline.Generate => [new GptGenerator(Models.GptConfig.Preset(spec.GptModel), spec.GptCheckpoint, spec.Sampling, spec.EffectiveMaxNewTokens, spec.BatchSize)],
        var p => throw new ArgumentOutOfRangeException(nameof(spec), p, "unknown pipeline"),
    };

    private static GptScorer Scorer(InferJobOptions spec) => new(spec.Threads, Models.GptConfig.Preset(spec.GptModel), checkpoint: spec.GptCheckpoint);
}
