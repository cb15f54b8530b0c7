using Toolkit.Generation;
using Toolkit.Models;

namespace Toolkit.Rl;

/// <summary>
/// A task's text in a model's tokens: prompts as the tokenizer encodes a text (with its BOS), answers ended by the
/// model's stop token (its EOS; a newline for the byte tokenizer, which has none), and a response decoded back to the
/// text the task judges (a response that stopped ends with the task's newline, whatever the stop token was).
/// </summary>
internal sealed class TaskTokens
{
    /// <summary>The byte tokenizer's: prompts and answers as UTF-8 bytes, a newline as the stop token.</summary>
    public static TaskTokens Bytes { get; } = new(TextTokenizer.Bytes);

    /// <summary>Tokens for <paramref name="tokenizer"/>.</summary>
    /// <exception cref="ArgumentException">The tokenizer has no EOS and no single token for a newline.</exception>
    public TaskTokens(TextTokenizer tokenizer)
    {
        Tokenizer = tokenizer;
        Stop = tokenizer.StopIds();
    }

    /// <summary>The tokenizer.</summary>
    public TextTokenizer Tokenizer { get; }

    /// <summary>Tokens that end a response (the first is the one supervised answers end with).</summary>
    public IReadOnlyList<long> Stop { get; }

    /// <summary>A prompt's tokens.</summary>
    public long[] Prompt(Problem problem) => Tokenizer.Encode(problem.Prompt);

    /// <summary>The reference answer's tokens, ended by the stop token.</summary>
    public long[] Answer(Problem problem) => [.. Tokenizer.EncodeText(problem.Answer), Stop[0]];

    /// <summary>What the task judges: the response's text, ended by the task's newline when it stopped.</summary>
    public string Completion(Sequence sequence)
    {
        var stopped = sequence.Tokens.Count > 0 && Stop.Contains(sequence.Tokens[^1]);
        var text = Tokenizer.Decode(stopped ? sequence.Tokens.Take(sequence.Tokens.Count - 1) : sequence.Tokens);
        return stopped ? text + VerifiableTask.Stop : text;
    }
}
