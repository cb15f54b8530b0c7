using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Toolkit.Models;

/// <summary>
/// Reads a Hugging Face folder's tokenizer into Microsoft.ML.Tokenizers: <c>tokenizer.json</c> with a byte-level BPE
/// (GPT-2, Llama 3, Qwen2: its vocabulary, merges, split pattern and added tokens), a SentencePiece
/// <c>tokenizer.model</c> (Llama 2, Mistral; also when <c>tokenizer.json</c> is its converted form), a Unigram
/// <c>tokenizer.json</c>, or <c>vocab.json</c> + <c>merges.txt</c>. <c>tokenizer_config.json</c> and the
/// <c>tokenizer.json</c> post-processor decide whether texts start with BOS; generation stops at
/// <c>generation_config.json</c>'s, <c>config.json</c>'s or the tokenizer's EOS ids.
/// </summary>
internal static class HfTokenizer
{
    /// <summary>GPT-2's pre-tokenizer pattern (byte-level BPE without an explicit split).</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Loads the tokenizer of <paramref name="folder"/>.</summary>
    /// <param name="folder">A Hugging Face folder.</param>
    /// <param name="configEos">EOS ids from <c>config.json</c> (used when <c>generation_config.json</c> names
    /// none).</param>
    /// <exception cref="FileNotFoundException">No tokenizer file; the message lists what was looked for.</exception>
    /// <exception cref="InvalidDataException">A tokenizer the toolkit cannot read; the message names the file and
    /// key.</exception>
    public static TextTokenizer Load(string folder, IReadOnlyList<long>? configEos = null)
    {
        var json = Path.Combine(folder, "tokenizer.json");
        var model = Path.Combine(folder, "tokenizer.model");
        var settings = ReadObject(Path.Combine(folder, "tokenizer_config.json"));
        (Tokenizer Inner, Dictionary<string, int> Specials, bool TemplateBos) loaded;
        string source;
        if (File.Exists(json)) (loaded, source) = (FromJson(json, model), json);
        else if (File.Exists(model)) (loaded, source) = ((SentencePiece(model), [], false), model);
        else if (File.Exists(Path.Combine(folder, "vocab.json")) && File.Exists(Path.Combine(folder, "merges.txt")))
            (loaded, source) = ((BpeTokenizer.Create(new BpeOptions(Path.Combine(folder, "vocab.json"),
                Path.Combine(folder, "merges.txt"))
                { ByteLevel = true, PreTokenizer = new RegexPreTokenizer(new Regex(Gpt2Pattern, RegexOptions.Compiled),
                    null) }), [], false),
                Path.Combine(folder, "vocab.json"));
        else throw new FileNotFoundException(
            $"{folder} has no tokenizer: none of tokenizer.json, tokenizer.model, vocab.json + merges.txt.", json);
        var (inner, specials, templateBos) = loaded;
        var vocabulary = inner switch
        {
            BpeTokenizer b => b.Vocabulary.Values,
            SentencePieceTokenizer s => s.Vocabulary.Values,
            _ => [],
        };
        var size = vocabulary.Concat(specials.Values).DefaultIfEmpty(-1).Max() + 1;
        long? Id(string? token) => token is null ? null
            : specials.TryGetValue(token, out var s) ? s
            : inner is SentencePieceTokenizer sp && sp.Vocabulary.TryGetValue(token, out var v) ? v
            : inner is BpeTokenizer bpe && bpe.Vocabulary.TryGetValue(token, out var w) ? w : null;
        var bos = Id(TokenText(settings?["bos_token"])) ?? (inner as SentencePieceTokenizer)?.BeginningOfSentenceId;
        var eos = ReadIds(ReadObject(Path.Combine(folder, "generation_config.json"))?["eos_token_id"]);
        if (eos.Length == 0) eos = [.. configEos ?? []];
        if (eos.Length == 0 && (Id(TokenText(settings?["eos_token"]))
            ?? (inner as SentencePieceTokenizer)?.EndOfSentenceId) is { } e) eos = [e];
        var addBos = settings?["add_bos_token"] is JsonValue flag
            && flag.GetValueKind() is JsonValueKind.True or JsonValueKind.False
            ? flag.GetValue<bool>() : templateBos || inner is SentencePieceTokenizer;
        var specialIds = new HashSet<long>(specials.Values.Select(i => (long)i));
        if (inner is SentencePieceTokenizer piece) specialIds.UnionWith([piece.BeginningOfSentenceId,
            piece.EndOfSentenceId]);
        return new MlTokenizer(inner, size) { Source = source, BosId = bos, AddsBos = addBos && bos is not null,
            EosIds = eos, SpecialIds = specialIds };
    }

    private static (Tokenizer, Dictionary<string, int>, bool) FromJson(string path, string sentencePieceModel)
    {
        var root = ReadObject(path) ?? throw new InvalidDataException($"{path}: not a JSON object.");
        var model = root["model"] as JsonObject ?? throw new InvalidDataException($"{path}: key 'model' is missing.");
        var type = model["type"]?.GetValue<string>() ?? "BPE";
        var specials = (root["added_tokens"] as JsonArray ?? []).OfType<JsonObject>()
            .ToDictionary(t => t["content"]!.GetValue<string>(), t => t["id"]!.GetValue<int>());
        var templateBos = TemplateStartsWithSpecial(root["post_processor"]);
        if (type == "Unigram")
        {
            using var stream = File.OpenRead(path);
            return (SentencePieceTokenizer.CreateFromTokenizerJson(stream, false, false, specials), specials,
                templateBos);
        }
        if (type != "BPE") throw new InvalidDataException(
            $"{path}: key 'model.type' is '{type}'; the toolkit reads BPE and Unigram tokenizers.");
        var byteLevel = Mentions(root["pre_tokenizer"], "ByteLevel") || Mentions(root["decoder"], "ByteLevel");
        if (!byteLevel)
        {
            if (File.Exists(sentencePieceModel)) return (SentencePiece(sentencePieceModel), specials, templateBos);
            throw new InvalidDataException(
                $"{path}: a SentencePiece-style BPE (no ByteLevel pre-tokenizer); put the folder's tokenizer.model " +
                "beside it.");
        }
        if (Mentions(root["pre_tokenizer"], "\"add_prefix_space\":true"))
            throw new InvalidDataException(
                $"{path}: key 'pre_tokenizer.add_prefix_space' is true, which is not implemented.");
        var vocabulary = (model["vocab"] as JsonObject
            ?? throw new InvalidDataException($"{path}: key 'model.vocab' is missing."))
            .Select(e => new KeyValuePair<string, int>(e.Key, e.Value!.GetValue<int>()));
        var merges = Merges(model);
        var pattern = SplitPattern(root["pre_tokenizer"]) ?? Gpt2Pattern;
        var options = new BpeOptions(vocabulary)
        {
            Merges = merges,
            ByteLevel = true,
            SpecialTokens = specials,
            PreTokenizer = new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), specials),
        };
        return (BpeTokenizer.Create(options), specials, templateBos);
    }

    /// <summary>A BPE model's merges as "left right" lines (tokenizer.json writes a merge as that text or as a
    /// pair).</summary>
    internal static List<string> Merges(JsonNode model) => [.. (model["merges"] as JsonArray ?? []).Select(m
        => m is JsonArray pair ? $"{pair[0]} {pair[1]}" : m!.GetValue<string>())];

    private static SentencePieceTokenizer SentencePiece(string path)
    {
        using var stream = File.OpenRead(path);
        try
        {
            return LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not IOException)
        {
            throw new InvalidDataException($"{path}: not a SentencePiece model the toolkit reads ({e.Message}).", e);
        }
    }

    /// <summary>The regex of a <c>Split</c> pre-tokenizer (alone or in a <c>Sequence</c>), or null.</summary>
    private static string? SplitPattern(JsonNode? node)
    {
        if (node is not JsonObject o) return null;
        if (o["pretokenizers"] is JsonArray list) return list.Select(SplitPattern).FirstOrDefault(p => p is not null);
        if (o["type"]?.GetValue<string>() != "Split") return null;
        if (o["pattern"]?["Regex"]?.GetValue<string>() is { } regex) return regex;
        return o["pattern"]?["String"]?.GetValue<string>() is { } literal ? Regex.Escape(literal) : null;
    }

    private static bool TemplateStartsWithSpecial(JsonNode? node) => node switch
    {
        JsonObject o when o["type"]?.GetValue<string>() == "TemplateProcessing"
            => o["single"] is JsonArray { Count: > 0 } single && single[0]?["SpecialToken"] is not null,
        JsonObject o when o["processors"] is JsonArray list => list.Any(TemplateStartsWithSpecial),
        _ => false,
    };

    private static bool Mentions(JsonNode? node, string text) =>
        node is not null
        && node.ToJsonString().Replace(" ", "", StringComparison.Ordinal).Contains(text, StringComparison.Ordinal);

    private static string? TokenText(JsonNode? node) => node switch
    {
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonObject o => o["content"]?.GetValue<string>(),
        _ => null,
    };

    private static long[] ReadIds(JsonNode? node) => node switch
    {
        JsonArray list => [.. list.Select(n => n!.GetValue<long>())],
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => [v.GetValue<long>()],
        _ => [],
    };

    private static JsonObject? ReadObject(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e);
        }
    }
}
