using System.Globalization;
using Toolkit.Options;
using Toolkit.Reporting;

namespace Toolkit.Models;

/// <summary>Options of <c>model info</c>: which model to describe.</summary>
public sealed record ModelInfoOptions
{
    /// <summary>The model.</summary>
    [OptionGroup] public ModelOptions Model { get; init; } = new();
}

/// <summary>What a model is (<c>toolkit model info</c>, <c>#!model info</c>): its family, shape, size, tokenizer and
/// files.</summary>
public sealed record ModelFacts(ModelSource Source) : IFacts
{
    /// <inheritdoc/>
    public string Title => $"Model {Source.Text}";

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, string Value)> Facts()
    {
        static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);
        var c = Source.Config;
        var t = Source.Tokenizer;
        var rows = new List<(string, string)>
        {
            ("source", Source.Kind switch { ModelSourceKind.Preset => "GPT preset",
                ModelSourceKind.Checkpoint => "toolkit checkpoint", _ => "Hugging Face folder" }),
            ("family", c.ModelType),
            ("parameters", N(c.ParameterCount)),
            ("layers", N(c.Layers)),
            ("hidden", N(c.Hidden)),
        };
        if (c is DecoderConfig d)
        {
            rows.Add(("heads / kv heads / head dim", $"{d.Heads} / {d.KvHeads} / {d.HeadDim}"));
            rows.Add(("feed-forward", d.Experts > 0
                ? $"{d.Experts} experts, top-{d.TopK}{(d.SharedExpertIntermediate > 0 ? " + shared" : "")} " +
                    $"({d.RoutedWidth} wide)" : $"SwiGLU {d.Intermediate}"));
            rows.Add(("rope",
                $"theta {d.RopeTheta:G}{(d.RopeScaling is { } s ? $", llama3 scaling x{s.Factor:G}" : "")}"));
            rows.Add(("output", d.TieWordEmbeddings ? "tied to the embedding" : "lm_head"));
        }
        else if (c is GptConfig g) rows.Add(("heads / experts",
            $"{g.Heads} / {(g.Experts > 0 ? $"{g.Experts} top-{g.TopK}" : "dense")}"));
        rows.Add(("vocabulary / tokenizer",
            $"{N(c.VocabularySize)} / {N(t.Size)} ({(t.Source is null ? "bytes" : Path.GetFileName(t.Source))})"));
        rows.Add(("BOS / EOS",
            $"{(t.BosId is { } b ? $"{b}{(t.AddsBos ? ", added" : "")}" : "none")} " +
                $"/ {(t.EosIds.Count > 0 ? string.Join(", ", t.EosIds) : "none")}"));
        rows.Add(("context", N(c.ContextLength)));
        rows.Add(("stored dtype", Source.DType));
        if (Source.Folder is { } folder) rows.Add(("folder", Path.GetFullPath(folder)));
        return rows;
    }
}
