using System.Text.RegularExpressions;

namespace Toolkit.BatchInference;

/// <summary>One model stage of a declared pipeline.</summary>
/// <param name="Name">The stage's name: in metrics, and as the prefix of its output fields (none when it is the model's
/// own name).</param>
/// <param name="Model">embed, score, generate or classify.</param>
/// <param name="Input">The stage whose output it reads, or null for the record's text.</param>
/// <param name="Replicas">Predictor replicas of this stage in each worker.</param>
internal sealed record InferStage(string Name, string Model, string? Input, int Replicas);

/// <summary>
/// The model stages of a job as a DAG the user declares (<c>--stages</c>): comma-separated
/// <c>[name=]model[(input)][*replicas]</c>, for example <c>emb=embed*2,topic=classify(emb),ppl=score</c>: MiniLM
/// embeddings with two replicas, a zero-shot classifier reading them, and the GPT scoring each text beside them. A
/// stage without an input reads the record's text. What may feed what: embed gives vectors (classify reads them);
/// generate gives text (embed, score or generate may read it); score and classify give nothing to read.
/// </summary>
internal static partial class InferStages
{
    /// <summary>The worker's own stages, whose names a model stage may not take (their metrics would merge).</summary>
    public static readonly IReadOnlyList<string> Reserved = ["read", "preprocess", "postprocess", "write"];

    /// <summary>The models a stage may run.</summary>
    public static readonly IReadOnlyList<string> Models = ["embed", "score", "generate", "classify"];

    [GeneratedRegex(
        @"^\s*(?:(?<name>[A-Za-z][A-Za-z0-9_]*)\s*=\s*)?(?<model>[A-Za-z+]+)\s*" +
        @"(?:\(\s*(?<input>[^)]*?)\s*\))?\s*(?:\*\s*(?<replicas>[^\s]+))?\s*$")]
    private static partial Regex StagePattern();

    /// <summary>The stages of <paramref name="spec"/>: its <c>--stages</c>, else the ones its <c>--pipeline</c> names;
    /// in an order where every stage comes after its input.</summary>
    /// <exception cref="ArgumentException">The declaration is malformed, names an unknown model or stage, has a cycle,
    /// or connects stages that cannot feed each other.</exception>
    public static IReadOnlyList<InferStage> Of(InferModelOptions spec) => spec.Stages is { } text ? Parse(text,
        spec.Replicas) : spec.Pipeline switch
    {
        InferPipeline.Embed => [new("embed", "embed", null, spec.Replicas)],
        InferPipeline.Score => [new("score", "score", null, spec.Replicas)],
        InferPipeline.EmbedAndScore => [new("embed", "embed", null, spec.Replicas), new("score", "score", null,
            spec.Replicas)],
        InferPipeline.Generate => [new("generate", "generate", null, spec.Replicas)],
        var p => throw new ArgumentOutOfRangeException(nameof(spec), p, "unknown pipeline"),
    };

    /// <summary>Parses and checks a declaration (see the type's remarks); stages without <c>*R</c> get
    /// <paramref name="defaultReplicas"/>.</summary>
    /// <exception cref="ArgumentException">What is wrong, naming the stage.</exception>
    public static IReadOnlyList<InferStage> Parse(string text, int defaultReplicas = 1)
    {
        var stages = new List<InferStage>();
        foreach (var part in text.Split(','))
        {
            var m = StagePattern().Match(part);
            if (string.IsNullOrWhiteSpace(part) || !m.Success)
                throw new ArgumentException(
                    $"'{part.Trim()}' is not a stage: write [name=]model[(input)][*replicas], e.g. emb=embed*2 or " +
                        $"topic=classify(emb)", nameof(InferModelOptions.Stages));
            var model = m.Groups["model"].Value.ToLowerInvariant();
            if (!Models.Contains(model))
                throw new ArgumentException(
                    $"stage '{part.Trim()}': unknown model '{model}'; valid: {string.Join(", ", Models)}",
                        nameof(InferModelOptions.Stages));
            var name = m.Groups["name"].Success ? m.Groups["name"].Value : model;
            var replicas = defaultReplicas;
            if (m.Groups["replicas"].Success && (!int.TryParse(m.Groups["replicas"].Value,
                out replicas) || replicas < 1 || replicas > 64))
                throw new ArgumentException(
                    $"stage '{name}': replicas must be a whole number from 1 to 64 (got " +
                        $"'{m.Groups["replicas"].Value}')", nameof(InferModelOptions.Stages));
            var input = m.Groups["input"].Success ? m.Groups["input"].Value : null;
            if (input is { Length: 0 }) throw new ArgumentException(
                $"stage '{name}': the parentheses must name the stage it reads", nameof(InferModelOptions.Stages));
            if (Reserved.Contains(name))
                throw new ArgumentException(
                    $"'{name}' names one of the worker's own stages ({string.Join(", ", Reserved)}): name the model " +
                        $"stage otherwise", nameof(InferModelOptions.Stages));
            if (stages.Any(s => s.Name == name))
                throw new ArgumentException($"two stages are named '{name}': name them apart (name=model)",
                    nameof(InferModelOptions.Stages));
            stages.Add(new InferStage(name, model, input, replicas));
        }
        foreach (var s in stages)
        {
            if (s.Input is null)
            {
                if (Reads(s.Model) != Value.Text)
                    throw new ArgumentException(
                        $"stage '{s.Name}': {s.Model} reads another stage's vectors, not the record's text: give it " +
                            $"an input, e.g. {s.Name}=classify(emb) after emb=embed", nameof(InferModelOptions.Stages));
                continue;
            }
            var source = stages.FirstOrDefault(o => o.Name == s.Input)
                ?? throw new ArgumentException(
                    $"stage '{s.Name}' reads '{s.Input}', which is not a stage; stages: {string.Join(", " +
                        "", stages.Select(o => o.Name))}", nameof(InferModelOptions.Stages));
            if (Gives(source.Model) != Reads(s.Model))
                throw new ArgumentException(
                    $"stage '{s.Name}' ({s.Model}) reads {Describe(Reads(s.Model))}, but '{source.Name}' " +
                        $"({source.Model}) gives {Describe(Gives(source.Model))}", nameof(InferModelOptions.Stages));
        }
        return Ordered(stages);
    }

    /// <summary>True when the stage's output fields carry its name as a prefix (<c>name_field</c>): it is not named
    /// after its model.</summary>
    public static bool Prefixed(InferStage stage) => stage.Name != stage.Model;

    /// <summary>The fields a stage adds to each output row: its model's, prefixed with the stage's name when
    /// <see cref="Prefixed"/>.</summary>
    public static IEnumerable<string> OutputFields(InferStage stage) => (stage.Model switch
    {
        "embed" => ["embedding"],
        "score" => ["score"],
        "generate" => ["generation", "generation_tokens", "generation_logprob"],
        "classify" => new[] { "label", "similarity" },
        _ => [],
    }).Select(f => Prefixed(stage) ? $"{stage.Name}_{f}" : f);

    /// <summary>What a model reads.</summary>
    internal static Value Reads(string model) => model == "classify" ? Value.Vector : Value.Text;

    /// <summary>What a model's output gives a stage that reads it.</summary>
    internal static Value Gives(string model) => model switch { "embed" => Value.Vector, "generate" => Value.Text,
        _ => Value.None };

    private static string Describe(Value value) => value switch { Value.Text => "text", Value.Vector => "vectors",
        _ => "nothing another stage can read" };

    /// <summary>Kahn's order, stable in the declared order; a cycle is an error.</summary>
    private static List<InferStage> Ordered(List<InferStage> stages)
    {
        var ordered = new List<InferStage>(stages.Count);
        var left = new List<InferStage>(stages);
        while (left.Count > 0)
        {
            var ready = left.FirstOrDefault(s => s.Input is null || ordered.Any(o => o.Name == s.Input))
                ?? throw new ArgumentException(
                    $"the stages {string.Join(", ", left.Select(s => s.Name))} read each other in a cycle",
                        nameof(InferModelOptions.Stages));
            ordered.Add(ready);
            left.Remove(ready);
        }
        return ordered;
    }

    /// <summary>What flows along an edge.</summary>
    internal enum Value { None, Text, Vector }
}
