using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using Toolkit.Models;

namespace Toolkit.Tests.Models;

/// <summary>
/// Tokenizer files the tokenizer tests load: GPT-2 and cl100k_base (the data packages' tiktoken ranks) written as
/// Hugging Face byte-level BPE folders (merges derived from the ranks, as the Hub's conversions do), and a small
/// SentencePiece BPE <c>tokenizer.model</c> learned from the embedded stories.
/// </summary>
internal static class TokenizerFolders
{
    /// <summary>The cl100k_base split pattern (Llama 3's differs only in its digit and letter classes).</summary>
    public const string Cl100kPattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*" +
        @"|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>The ranks of a data package's tiktoken file: token bytes by id.</summary>
    public static Dictionary<int, byte[]> Ranks(string assembly, string resource)
    {
        using var stream = System.Reflection.Assembly.Load(assembly).GetManifestResourceStream(resource)!;
        using var reader = new StreamReader(new DeflateStream(stream, CompressionMode.Decompress));
        var tokens = new Dictionary<int, byte[]>();
        var index = 0;
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity", StringComparison.Ordinal)) continue;
            var parts = line.Split(' ');
            tokens[parts.Length > 1 ? int.Parse(parts[1]) : index] = Convert.FromBase64String(parts[0]);
            index++;
        }
        return tokens;
    }

    /// <summary>
    /// Writes tokenizer.json from tiktoken ranks: each multi-byte token's merge is the split that byte-pair merging by
    /// rank (only lower ranks) ends with, which reproduces tiktoken's encoding.
    /// </summary>
    public static void WriteTiktoken(string folder, Dictionary<int, byte[]> ranks, string? pattern,
        IReadOnlyDictionary<string, int> specials, string? bos)
    {
        Directory.CreateDirectory(folder);
        var rank = ranks.ToDictionary(e => Convert.ToBase64String(e.Value), e => e.Key);
        var vocabulary = new JsonObject();
        var merges = new JsonArray();
        foreach (var (id, bytes) in ranks.OrderBy(e => e.Key))
        {
            vocabulary[ByteLevelBpe.Show(bytes)] = id;
            if (bytes.Length < 2) continue;
            var parts = bytes.Select(b => new[] { b }).ToList();
            while (true)
            {
                var (best, bestRank) = (-1, int.MaxValue);
                for (var i = 0; i + 1 < parts.Count; i++)
                    if (rank.TryGetValue(Convert.ToBase64String([.. parts[i], .. parts[i + 1]]),
                        out var r) && r < id && r < bestRank) (best, bestRank) = (i, r);
                if (best < 0) break;
                parts[best] = [.. parts[best], .. parts[best + 1]];
                parts.RemoveAt(best + 1);
            }
            if (parts.Count == 2) merges.Add($"{ByteLevelBpe.Show(parts[0])} {ByteLevelBpe.Show(parts[1])}");
        }
        var byteLevel = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true,
            ["use_regex"] = pattern is null };
        JsonNode preTokenizer = pattern is null ? byteLevel : new JsonObject
        {
            ["type"] = "Sequence",
            ["pretokenizers"] = new JsonArray(
                new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = pattern },
                    ["behavior"] = "Isolated", ["invert"] = false },
                byteLevel.DeepClone()),
        };
        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray([.. specials.Select(s => (JsonNode)new JsonObject { ["id"] = s.Value,
                ["content"] = s.Key, ["special"] = true })]),
            ["pre_tokenizer"] = preTokenizer,
            ["decoder"] = byteLevel.DeepClone(),
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocabulary, ["merges"] = merges },
        };
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), json.ToJsonString());
        var settings = new JsonObject { ["bos_token"] = bos, ["add_bos_token"] = bos is not null,
            ["eos_token"] = specials.Keys.LastOrDefault() };
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), settings.ToJsonString());
    }

    /// <summary>
    /// A SentencePiece BPE model (Llama 2's scheme: spaces as ▁ with a dummy prefix, merges ranked by score, byte
    /// fallback): &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, the 256 byte pieces, the corpus's characters, then
    /// <paramref name="merges"/> learned merges.
    /// </summary>
    public static void WriteSentencePiece(string path, string corpus, int merges)
    {
        var words = corpus.Split([' ', '\n'],
            StringSplitOptions.RemoveEmptyEntries).GroupBy(w => "▁" + w).ToDictionary(g => g.Key, g => g.Count());
        var pieces = new List<(string Piece, float Score, int Type)> { ("<unk>", 0, 2), ("<s>", 0, 3), ("</s>", 0, 3) };
        pieces.AddRange(Enumerable.Range(0, 256).Select(b => ($"<0x{b:X2}>", 0f, 6)));
        var symbols = words.Keys.SelectMany(w => w.Select(c
            => c.ToString())).Distinct().Order(StringComparer.Ordinal).ToList();
        var split = words.ToDictionary(w => w.Key, w => w.Key.Select(c => c.ToString()).ToList());
        var learned = new List<string>();
        for (var round = 0; round < merges; round++)
        {
            var pairs = new Dictionary<(string, string), int>();
            foreach (var (word, parts) in split)
                for (var i = 0; i + 1 < parts.Count; i++) pairs[(parts[i],
                    parts[i + 1])] = pairs.GetValueOrDefault((parts[i], parts[i + 1])) + words[word];
            var best = pairs.OrderByDescending(p => p.Value).ThenBy(p => p.Key.Item1 + p.Key.Item2,
                StringComparer.Ordinal).First().Key;
            var merged = best.Item1 + best.Item2;
            if (learned.Contains(merged) || symbols.Contains(merged)) break;
            learned.Add(merged);
            foreach (var parts in split.Values)
                for (var i = 0; i + 1 < parts.Count; i++)
                    if (parts[i] == best.Item1
                        && parts[i + 1] == best.Item2) { parts[i] = merged; parts.RemoveAt(i + 1); }
        }
        pieces.AddRange(learned.Select((p, i) => (p, -(float)i, 1)));
        pieces.AddRange(symbols.Select((s, i) => (s, -(float)(learned.Count + i), 1)));
        File.WriteAllBytes(path, SentencePieceModel(pieces));
    }

    private static byte[] SentencePieceModel(IEnumerable<(string Piece, float Score, int Type)> pieces)
    {
        var model = new MemoryStream();
        foreach (var (piece, score, type) in pieces)
        {
            var message = new MemoryStream();
            Bytes(message, 1, Encoding.UTF8.GetBytes(piece));
            Tag(message, 2, 5);
            message.Write(BitConverter.GetBytes(score));
            Tag(message, 3, 0);
            Varint(message, (ulong)type);
            Bytes(model, 1, message.ToArray());
        }
        var trainer = new MemoryStream();
        // BPE, byte_fallback, unk/bos/eos ids
        foreach (var (field, value) in new[] { (3, 2UL), (35, 1UL), (40, 0UL), (41, 1UL), (42, 2UL) })
        {
            Tag(trainer, field, 0);
            Varint(trainer, value);
        }
        Varint(trainer, (43 << 3) | 0);                                            // pad_id = -1
        Varint(trainer, ulong.MaxValue);
        Bytes(model, 2, trainer.ToArray());
        var normalizer = new MemoryStream();
        Bytes(normalizer, 1, "identity"u8.ToArray());
        // add_dummy_prefix, no whitespace folding, escape spaces
        foreach (var (field, value) in new[] { (3, 1UL), (4, 0UL), (5, 1UL) })
        {
            Tag(normalizer, field, 0);
            Varint(normalizer, value);
        }
        Bytes(model, 3, normalizer.ToArray());
        return model.ToArray();
    }

    private static void Bytes(Stream s, int field, byte[] bytes)
    {
        Tag(s, field, 2);
        Varint(s, (ulong)bytes.Length);
        s.Write(bytes);
    }

    private static void Tag(Stream s, int field, int wire) => Varint(s, (ulong)((field << 3) | wire));

    private static void Varint(Stream s, ulong value)
    {
        do
        {
            var b = (byte)(value & 0x7F);
            value >>= 7;
            s.WriteByte(value == 0 ? b : (byte)(b | 0x80));
        } while (value != 0);
    }
}
