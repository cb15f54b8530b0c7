using System.Text;
using Toolkit.Models;
using static TorchSharp.torch;

namespace Toolkit.LlamaCpp;

/// <summary>
/// Writes a Hugging Face folder as a GGUF (version 3) file llama.cpp loads, in fp32: the architecture's
/// hyper-parameters, the tokenizer's vocabulary, and every tensor under llama.cpp's names. The Llama families' q and k
/// rows are permuted from Hugging Face's rotate-half RoPE to llama.cpp's adjacent pairs (the <c>llama</c>
/// architecture); Qwen2's are not (llama.cpp runs Qwen2 with rotate-half). Mixture-of-experts weights are stacked per
/// layer, as llama.cpp stores them.
/// </summary>
public static class GgufWriter
{
    private const int Alignment = 32;

    /// <summary>Writes <paramref name="model"/> to <paramref name="path"/>.</summary>
    /// <exception cref="NotSupportedException">A GPT (GPT-2 is not written here) or a family llama.cpp has no mapping
    /// for.</exception>
    public static void Write(HfModel model, string path)
    {
        if (model.Config is not DecoderConfig config) throw new NotSupportedException(
            "GGUF export covers the decoder families (llama, qwen2, mistral, mixtral, qwen2_moe).");
        var arch = config.Family switch
        {
            DecoderFamily.Qwen2 => "qwen2", DecoderFamily.Qwen2Moe => "qwen2moe", _ => "llama",
        };
        var tensors = Tensors(model, config, arch).ToList();
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        using var writer = new BinaryWriter(file, Encoding.UTF8);
        var metadata = Metadata(model, config, arch);
        writer.Write(0x46554747u);                                                    // "GGUF"
        writer.Write(3u);
        writer.Write((ulong)tensors.Count);
        writer.Write((ulong)metadata.Count);
        foreach (var (key, value) in metadata) WriteKeyValue(writer, key, value);
        ulong offset = 0;
        foreach (var t in tensors)
        {
            WriteString(writer, t.Name);
            writer.Write((uint)t.Shape.Length);
            foreach (var d in t.Shape.Reverse()) writer.Write((ulong)d);              // innermost dimension first
            writer.Write(0u);                                                         // GGML_TYPE_F32
            writer.Write(offset);
            offset += Align((ulong)(t.Shape.Aggregate(1L, (a, b) => a * b) * 4));
        }
        Pad(writer);
        foreach (var t in tensors)
        {
            using var scope = NewDisposeScope();
            var values = t.Produce().to(ScalarType.Float32).contiguous();
            writer.Write(values.bytes);
            Pad(writer);
        }
    }

    private sealed record Entry(string Name, long[] Shape, Func<Tensor> Produce);

    private static IEnumerable<Entry> Tensors(HfModel model, DecoderConfig c, string arch)
    {
        Tensor Read(string name) => model.ReadParameter(name, ScalarType.Float32);
        long[] Shape(string name) => ModelLayout.Of(c).Single(p => p.Name == name).Shape;
        Entry Plain(string gguf, string hf) => new(gguf, Shape(hf), () => Read(hf));
        yield return Plain("token_embd.weight", "model.embed_tokens.weight");
        yield return Plain("output_norm.weight", "model.norm.weight");
        // Written even when tied: some of llama.cpp's architectures (qwen2moe) require it.
        yield return Plain("output.weight", c.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight");
        if (c.RopeScaling is not null)
        {
            var scaled = Rope.InverseFrequencies(c);
            var plain = Rope.InverseFrequencies(c with { RopeScaling = null });
            var factors = plain.Zip(scaled, (p, s) => p / s).ToArray();                 // llama.cpp divides θ by these
            yield return new Entry("rope_freqs.weight", [factors.Length], () => tensor(factors));
        }
        var permute = arch == "llama";
        for (var l = 0; l < c.Layers; l++)
        {
            var (p, b) = ($"model.layers.{l}.", $"blk.{l}.");
            yield return Plain(b + "attn_norm.weight", p + "input_layernorm.weight");
            foreach (var (g, h, heads) in new[] { ("attn_q", "q_proj", c.Heads), ("attn_k", "k_proj", c.KvHeads),
                ("attn_v", "v_proj", 0) })
            {
                var name = $"{p}self_attn.{h}.weight";
                var rotate = permute && heads > 0;
                yield return new Entry($"{b}{g}.weight", Shape(name), () => rotate ? Permute(Read(name),
                    heads) : Read(name));
                if (c.AttentionBias) yield return Plain($"{b}{g}.bias", $"{p}self_attn.{h}.bias");
            }
            yield return Plain(b + "attn_output.weight", p + "self_attn.o_proj.weight");
            yield return Plain(b + "ffn_norm.weight", p + "post_attention_layernorm.weight");
            foreach (var e in FeedForward(c, l, p, b, Read, Shape)) yield return e;
        }
    }

    private static IEnumerable<Entry> FeedForward(DecoderConfig c, int l, string p, string b, Func<string,
        Tensor> read, Func<string, long[]> shape)
    {
        if (!c.IsSparse(l))
        {
            foreach (var (g, h) in new[] { ("ffn_gate", "gate_proj"), ("ffn_up", "up_proj"), ("ffn_down",
                "down_proj") })
                yield return new Entry($"{b}{g}.weight", shape($"{p}mlp.{h}.weight"), () => read($"{p}mlp.{h}.weight"));
            yield break;
        }
        var mixtral = c.Family == DecoderFamily.Mixtral;
        var moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
        yield return new Entry(b + "ffn_gate_inp.weight", shape(moe + "gate.weight"), () => read(moe + "gate.weight"));
        foreach (var (g, hf) in new[] { ("ffn_gate_exps", mixtral ? "w1" : "gate_proj"), ("ffn_up_exps",
            mixtral ? "w3" : "up_proj"), ("ffn_down_exps", mixtral ? "w2" : "down_proj") })
        {
            var one = shape($"{moe}experts.0.{hf}.weight");
            yield return new Entry($"{b}{g}.weight", [c.Experts, .. one],
                () => stack([.. Enumerable.Range(0, c.Experts).Select(e => read($"{moe}experts.{e}.{hf}.weight"))]));
        }
        if (c.SharedExpertIntermediate <= 0) yield break;
        yield return new Entry(b + "ffn_gate_inp_shexp.weight", [c.Hidden],
            () => read(moe + "shared_expert_gate.weight").view(-1));
        foreach (var (g, h) in new[] { ("ffn_gate_shexp", "gate_proj"), ("ffn_up_shexp", "up_proj"), ("ffn_down_shexp",
            "down_proj") })
            yield return new Entry($"{b}{g}.weight", shape($"{moe}shared_expert.{h}.weight"),
                () => read($"{moe}shared_expert.{h}.weight"));
    }

    /// <summary>Rotate-half rows to adjacent pairs: rows (heads, 2, d/2) become (heads, d/2, 2).</summary>
    private static Tensor Permute(Tensor w, int heads)
    {
        var (rows, columns) = (w.shape[0], w.shape[1]);
        return w.view(heads, 2, rows / heads / 2, columns).transpose(1, 2).reshape(rows, columns);
    }

    private static List<(string, object)> Metadata(HfModel model, DecoderConfig c, string arch)
    {
        var list = new List<(string, object)>
        {
            ("general.architecture", arch), ("general.name", Path.GetFileName(Path.GetFullPath(model.Folder))),
            ("general.alignment", (uint)Alignment),
            ($"{arch}.context_length", (uint)c.ContextLength), ($"{arch}.embedding_length", (uint)c.Hidden),
            ($"{arch}.block_count", (uint)c.Layers), ($"{arch}.feed_forward_length", (uint)Math.Max(c.Intermediate, 1)),
            ($"{arch}.attention.head_count", (uint)c.Heads), ($"{arch}.attention.head_count_kv", (uint)c.KvHeads),
            ($"{arch}.attention.key_length", (uint)c.HeadDim), ($"{arch}.attention.value_length", (uint)c.HeadDim),
            ($"{arch}.attention.layer_norm_rms_epsilon", (float)c.RmsNormEpsilon), ($"{arch}.rope.freq_base",
                (float)c.RopeTheta),
            ($"{arch}.rope.dimension_count", (uint)c.HeadDim), ($"{arch}.vocab_size", (uint)c.VocabularySize),
        };
        if (c.Experts > 0) list.AddRange([($"{arch}.expert_count", (uint)c.Experts), ($"{arch}.expert_used_count",
            (uint)c.TopK)]);
        if (c.Family == DecoderFamily.Qwen2Moe)
            list.AddRange([($"{arch}.expert_feed_forward_length", (uint)c.ExpertIntermediate),
                ($"{arch}.expert_shared_feed_forward_length", (uint)c.SharedExpertIntermediate)]);
        list.AddRange(GgufVocabulary.Of(model, c));
        return list;
    }

    private static void WriteKeyValue(BinaryWriter w, string key, object value)
    {
        WriteString(w, key);
        switch (value)
        {
            case uint u: w.Write(4u); w.Write(u); break;
            case int i: w.Write(5u); w.Write(i); break;
            case float f: w.Write(6u); w.Write(f); break;
            case bool b: w.Write(7u); w.Write(b); break;
            case string s: w.Write(8u); WriteString(w, s); break;
            case string[] strings:
                w.Write(9u); w.Write(8u); w.Write((ulong)strings.Length);
                foreach (var s in strings) WriteString(w, s);
                break;
            case int[] ints:
                w.Write(9u); w.Write(5u); w.Write((ulong)ints.Length);
                foreach (var i in ints) w.Write(i);
                break;
            case float[] floats:
                w.Write(9u); w.Write(6u); w.Write((ulong)floats.Length);
                foreach (var f in floats) w.Write(f);
                break;
            default: throw new ArgumentException($"GGUF value of {key} has an unsupported type {value.GetType().Name}");
        }
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static ulong Align(ulong n) => (n + Alignment - 1) / Alignment * Alignment;

    private static void Pad(BinaryWriter w)
    {
        w.Flush();
        var position = (ulong)w.BaseStream.Position;
        for (var i = position; i < Align(position); i++) w.Write((byte)0);
    }
}
