using System.Text.Json;

namespace Toolkit.BatchInference;

/// <summary>A record travelling through a worker's pipeline: what was read, what each model added, or why it
/// failed.</summary>
internal sealed class WorkItem(long shard, InputRecord record)
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
/// A model stage of the pipeline: CPU preprocessing of one record (thread-safe, run on the preprocess stage), predictor
/// replicas (each its own session, used by one task at a time), and how its output is written.
/// </summary>
internal interface IModelStage : IDisposable
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
internal static class ModelStages
{
    /// <summary>
    /// The stages of <paramref name="spec"/>, in an order where each comes after its input: the models its
    /// <c>--pipeline</c> names, or, with <c>--stages</c>, one <see cref="DagStage"/> per declared stage.
    /// </summary>
    public static IReadOnlyList<IModelStage> Create(InferJobOptions spec)
    {
        var stages = InferStages.Of(spec.Models);
        // One model per worker, for every stage.
        var model = new Lazy<StageModel>(() => new StageModel(spec.Models.Model));
        if (spec.Models.Stages is null)
        {
            IReadOnlyList<IModelStage> models = [.. stages.Select(s => Model(spec, s.Model, model))];
            return FaultStage.Enabled ? [new FaultStage(models[0]), .. models.Skip(1)] : models;
        }
        var index = stages.Select((s, k) => (s.Name, k)).ToDictionary(e => e.Name, e => e.k);
        var created = new List<IModelStage>(stages.Count);
        try
        {
            foreach (var s in stages)
                created.Add(new DagStage(s, Model(spec, s.Model, model), s.Input is null ? -1 : index[s.Input]));
            return created;
        }
        catch
        {
            foreach (var c in created) c.Dispose();
            throw;
        }
    }

    private static IModelStage Model(InferJobOptions spec, string name, Lazy<StageModel> model) => name switch
    {
        "embed" => new MiniLmEmbedding(spec.Models.MaxTokens, spec.Models.Threads),
        "score" => new ScoreStage(model.Value, spec.Models.Threads),
        "generate" => new GenerateStage(model.Value, spec.Models.Sampling,
            spec.Models.EffectiveMaxNewTokens(model.Value.Source.Config), spec.Models.BatchSize),
        "classify" => new ZeroShotClassifier(spec.Models.LabelList, spec.Models.MaxTokens),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "unknown model"),
    };
}

/// <summary>
/// A stage of a declared DAG (<see cref="InferStages"/>): a model under the stage's name, with its own replica count,
/// reading the record's text or another stage's output. Its output fields carry the stage's name as a prefix
/// (<c>topic_label</c>) unless the stage is named after its model.
/// </summary>
internal sealed class DagStage(InferStage stage, IModelStage model, int input) : IModelStage
{
    /// <summary>The declaration.</summary>
    public InferStage Stage { get; } = stage;

    /// <summary>The model it runs.</summary>
    public IModelStage Model { get; } = model;

    /// <summary>Index (in the job's stage order) of the stage whose output it reads; -1 for the record's
    /// text.</summary>
    public int Input { get; } = input;

    /// <inheritdoc/>
    public string Name => Stage.Name;

    /// <inheritdoc/>
    public object Prepare(string text) => Model.Prepare(text);

    /// <summary>Prepares the output of the stage it reads (<paramref name="upstream"/>) for its model.</summary>
    public object PrepareFrom(DagStage upstream, object output) => (InferStages.Gives(upstream.Stage.Model),
        Model) switch
    {
        (InferStages.Value.Vector, ZeroShotClassifier classifier) => classifier.PrepareVector(output),
        (InferStages.Value.Text, _) => Model.Prepare(output is ValueTuple<string, int,
            double> generated ? generated.Item1 : (string)output),
        _ => throw new InvalidOperationException($"stage {Name} cannot read {upstream.Name}"),
    };

    /// <inheritdoc/>
    public IPredictor CreateReplica() => Model.CreateReplica();

    /// <inheritdoc/>
    public void Write(Utf8JsonWriter json, object output)
    {
        if (!InferStages.Prefixed(Stage)) { Model.Write(json, output); return; }
        var scratch = new System.Buffers.ArrayBufferWriter<byte>(1024);
        using (var inner = new Utf8JsonWriter(scratch))
        {
            inner.WriteStartObject();
            Model.Write(inner, output);
            inner.WriteEndObject();
        }
        using var fields = JsonDocument.Parse(scratch.WrittenMemory);
        foreach (var field in fields.RootElement.EnumerateObject())
        {
            json.WritePropertyName($"{Name}_{field.Name}");
            field.Value.WriteTo(json);
        }
    }

    /// <inheritdoc/>
    public void Dispose() => Model.Dispose();
}
