using System.Text;
using System.Text.Json.Nodes;
using Toolkit.Models;

namespace Toolkit.LlamaCpp;

/// <summary>
/// A folder's tokenizer as GGUF metadata: a byte-level BPE as llama.cpp's <c>gpt2</c> tokenizer (tokens by id, merges),
/// a SentencePiece <c>tokenizer.model</c> as its <c>llama</c> tokenizer (pieces, scores, types). Ids the tokenizer does
/// not use, up to the vocabulary size, become control tokens <c>[PAD{id}]</c>.
/// </summary>
internal static class GgufVocabulary
{
    public static IEnumerable<(string, object)> Of(HfModel model, DecoderConfig c)
    {
        var tokenizer = model.Tokenizer;
        var list = new List<(string, object)>();
        if (tokenizer is MlTokenizer { Inner: Microsoft.ML.Tokenizers.SentencePieceTokenizer })
        {
            var pieces = ReadPieces(Path.Combine(model.Folder, "tokenizer.model"));
            var tokens = Pad([.. pieces.Select(p => p.Piece)], c.VocabularySize);
            list.AddRange([("tokenizer.ggml.model", "llama"), ("tokenizer.ggml.tokens", tokens),
                ("tokenizer.ggml.scores", Pad([.. pieces.Select(p => p.Score)], c.VocabularySize, 0f)),
                ("tokenizer.ggml.token_type", Pad([.. pieces.Select(p => p.Type)], c.VocabularySize, 3))]);
        }
        else
        {
            var root = JsonNode.Parse(File.ReadAllText(Path.Combine(model.Folder, "tokenizer.json")))!;
            var byId = new SortedDictionary<int, string>();
            foreach (var (text, id) in root["model"]!["vocab"]!.AsObject()) byId[id!.GetValue<int>()] = text;
            var specials = new HashSet<int>();
            foreach (var added in root["added_tokens"]?.AsArray() ?? [])
            {
                var id = added!["id"]!.GetValue<int>();
                byId[id] = added["content"]!.GetValue<string>();
                specials.Add(id);
            }
            var tokens = Enumerable.Range(0, c.VocabularySize).Select(i => byId.GetValueOrDefault(i,
                $"[PAD{i}]")).ToArray();
            var types = Enumerable.Range(0, c.VocabularySize)
                .Select(i => byId.ContainsKey(i) && !specials.Contains(i) ? 1 : 3).ToArray();
            var merges = HfTokenizer.Merges(root["model"]!).ToArray();
            list.AddRange([("tokenizer.ggml.model", "gpt2"), ("tokenizer.ggml.pre", "default"),
                ("tokenizer.ggml.tokens", tokens),
                ("tokenizer.ggml.token_type", types), ("tokenizer.ggml.merges", merges)]);
        }
        if (tokenizer.BosId is { } bos) list.Add(("tokenizer.ggml.bos_token_id", (uint)bos));
        if (tokenizer.EosIds.Count > 0) list.Add(("tokenizer.ggml.eos_token_id", (uint)tokenizer.EosIds[0]));
        list.Add(("tokenizer.ggml.add_bos_token", tokenizer.AddsBos));
        return list;
    }

    private static string[] Pad(string[] values, int size) =>
        [.. values, .. Enumerable.Range(values.Length, Math.Max(0, size - values.Length)).Select(i => $"[PAD{i}]")];

    private static T[] Pad<T>(T[] values, int size, T fill) where T : struct =>
        [.. values, .. Enumerable.Repeat(fill, Math.Max(0, size - values.Length))];

    /// <summary>The pieces of a SentencePiece ModelProto (field 1: piece 1, score 2, type 3; NORMAL = 1 when
    /// absent).</summary>
    public static List<(string Piece, float Score, int Type)> ReadPieces(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var pieces = new List<(string, float, int)>();
        var position = 0;
        while (position < bytes.Length)
        {
            var (field, wire) = Tag(bytes, ref position);
            if (field == 1 && wire == 2)
            {
                var length = (int)Varint(bytes, ref position);
                pieces.Add(Piece(bytes.AsSpan(position, length)));
                position += length;
            }
            else Skip(bytes, ref position, wire);
        }
        return pieces;
    }

    private static (string, float, int) Piece(ReadOnlySpan<byte> message)
    {
        var (piece, score, type) = ("", 0f, 1);
        var bytes = message.ToArray();
        var position = 0;
        while (position < bytes.Length)
        {
            var (field, wire) = Tag(bytes, ref position);
            switch (field, wire)
            {
                case (1, 2):
                    var length = (int)Varint(bytes, ref position);
                    piece = Encoding.UTF8.GetString(bytes, position, length);
                    position += length;
                    break;
                case (2, 5):
                    score = BitConverter.ToSingle(bytes, position);
                    position += 4;
                    break;
                case (3, 0):
                    type = (int)Varint(bytes, ref position);
                    break;
                default:
                    Skip(bytes, ref position, wire);
                    break;
            }
        }
        return (piece, score, type);
    }

    private static (int Field, int Wire) Tag(byte[] bytes, ref int position)
    {
        var tag = Varint(bytes, ref position);
        return ((int)(tag >> 3), (int)(tag & 7));
    }

    private static ulong Varint(byte[] bytes, ref int position)
    {
        ulong value = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = bytes[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
    }

    private static void Skip(byte[] bytes, ref int position, int wire)
    {
        switch (wire)
        {
            case 0: Varint(bytes, ref position); break;
            case 1: position += 8; break;
            case 2:
                // read before adding: it advances position
                var length = (int)Varint(bytes, ref position);
                position += length;
                break;
            case 5: position += 4; break;
            default: throw new InvalidDataException($"protobuf wire type {wire} is not supported");
        }
    }
}
