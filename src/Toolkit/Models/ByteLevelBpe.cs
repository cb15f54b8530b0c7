using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Toolkit.Models;

/// <summary>
/// A small byte-level BPE (GPT-2's scheme: every byte a token, shown as a printable character, merges learned from a
/// corpus), written as a Hugging Face <c>tokenizer.json</c> that <see cref="HfTokenizer"/>, transformers and llama.cpp
/// read. <c>model init</c> trains one for its random-weight folders; a GPT preset exports its 256 byte tokens this way.
/// </summary>
internal static class ByteLevelBpe
{
    private static readonly char[] ByteToChar = BuildByteMap();

    /// <summary>The printable character GPT-2's byte-level BPE shows for each byte.</summary>
    public static char Show(byte b) => ByteToChar[b];

    /// <summary>A token's bytes as its vocabulary entry.</summary>
    public static string Show(IEnumerable<byte> bytes) => new([.. bytes.Select(Show)]);

    private static char[] BuildByteMap()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range(0xA1,
            12)).Concat(Enumerable.Range(0xAE, 0xFF - 0xAE + 1)).ToHashSet();
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++) map[b] = printable.Contains(b) ? (char)b : (char)next++;
        return map;
    }

    /// <summary>
    /// Learns <paramref name="merges"/> merges from <paramref name="corpus"/> (GPT-2 pre-tokenised; the most frequent
    /// adjacent pair merged each round, ties broken by the pair's text): tokens 0..255 are the bytes, then one token
    /// per merge.
    /// </summary>
    /// <returns>Each token's bytes (by id) and the merges in order.</returns>
    public static (List<byte[]> Tokens, List<(int Left, int Right)> Merges) Train(string corpus, int merges)
    {
        var words = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (Match m in Regex.Matches(corpus,
            HfTokenizer.Gpt2Pattern)) words[m.Value] = words.GetValueOrDefault(m.Value) + 1;
        var tokens = Enumerable.Range(0, 256).Select(b => new[] { (byte)b }).ToList();
        var pieces = words.Select(w => (Ids: Encoding.UTF8.GetBytes(w.Key).Select(b => (int)b).ToList(),
            Count: w.Value)).ToList();
        var learned = new List<(int, int)>();
        for (var round = 0; round < merges; round++)
        {
            var pairs = new Dictionary<(int, int), int>();
            foreach (var (ids, count) in pieces)
                for (var i = 0; i + 1 < ids.Count; i++) pairs[(ids[i], ids[i + 1])] = pairs.GetValueOrDefault((ids[i],
                    ids[i + 1])) + count;
            if (pairs.Count == 0) break;
            var best = pairs.OrderByDescending(p => p.Value).ThenBy(p
                => Show(tokens[p.Key.Item1]) + " " + Show(tokens[p.Key.Item2]), StringComparer.Ordinal).First().Key;
            var id = tokens.Count;
            tokens.Add([.. tokens[best.Item1], .. tokens[best.Item2]]);
            learned.Add(best);
            foreach (var (ids, _) in pieces)
                for (var i = 0; i + 1 < ids.Count; i++)
                    if (ids[i] == best.Item1 && ids[i + 1] == best.Item2)
                    {
                        ids[i] = id;
                        ids.RemoveAt(i + 1);
                    }
        }
        return (tokens, learned);
    }

    /// <summary>Byte-level offsets, then (with a BOS token) a template that starts every text with it, as Llama 3's
    /// does.</summary>
    private static JsonObject PostProcessor(string? bos, int bosId)
    {
        var byteLevel = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true,
            ["use_regex"] = true };
        if (bos is null) return byteLevel;
        JsonObject Special() => new() { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 0 } };
        JsonObject Sequence(string id) => new() { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = 0 } };
        var template = new JsonObject
        {
            ["type"] = "TemplateProcessing",
            ["single"] = new JsonArray(Special(), Sequence("A")),
            ["pair"] = new JsonArray(Special(), Sequence("A"), Special(), Sequence("B")),
            ["special_tokens"] = new JsonObject { [bos] = new JsonObject { ["id"] = bos,
                ["ids"] = new JsonArray(bosId), ["tokens"] = new JsonArray(bos) } },
        };
        return new JsonObject { ["type"] = "Sequence", ["processors"] = new JsonArray(byteLevel, template) };
    }

    /// <summary>
    /// Writes <c>tokenizer.json</c> (byte-level BPE, GPT-2 split pattern, the special tokens appended after the
    /// vocabulary) and <c>tokenizer_config.json</c> (BOS/EOS and whether texts start with BOS).
    /// </summary>
    /// <param name="folder">The model folder.</param>
    /// <param name="tokens">Each token's bytes, by id.</param>
    /// <param name="merges">The merges in order, as pairs of ids.</param>
    /// <param name="specials">Special tokens, given ids after the vocabulary in this order.</param>
    /// <param name="bos">The BOS token's text (one of <paramref name="specials"/>), or null.</param>
    /// <param name="eos">The EOS token's text, or null.</param>
    public static void Write(string folder, IReadOnlyList<byte[]> tokens, IReadOnlyList<(int Left, int Right)> merges,
        IReadOnlyList<string> specials, string? bos, string? eos)
    {
        var vocabulary = new JsonObject();
        for (var i = 0; i < tokens.Count; i++) vocabulary[Show(tokens[i])] = i;
        var added = new JsonArray();
        for (var i = 0; i < specials.Count; i++)
            added.Add(new JsonObject
            {
                ["id"] = tokens.Count + i, ["content"] = specials[i], ["single_word"] = false, ["lstrip"] = false,
                    ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            });
        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = added,
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false,
                ["trim_offsets"] = true, ["use_regex"] = true },
            ["post_processor"] = PostProcessor(bos, bos is null ? -1 : tokens.Count + specials.ToList().IndexOf(bos)),
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false,
                ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                    ["end_of_word_suffix"] = null,
                ["fuse_unk"] = false, ["byte_fallback"] = false, ["vocab"] = vocabulary,
                ["merges"] = new JsonArray([.. merges.Select(m
                    => (JsonNode)$"{Show(tokens[m.Left])} {Show(tokens[m.Right])}")]),
            },
        };
        Runtime.ToolkitJson.Write(Path.Combine(folder, "tokenizer.json"), json);
        var settings = new JsonObject
        {
            ["tokenizer_class"] = "PreTrainedTokenizerFast", ["add_bos_token"] = bos is not null,
                ["add_eos_token"] = false,
            ["bos_token"] = bos, ["eos_token"] = eos, ["model_max_length"] = 1_000_000,
        };
        Runtime.ToolkitJson.Write(Path.Combine(folder, "tokenizer_config.json"), settings);
    }
}
