using System.Text.Json.Serialization;

namespace Toolkit.Rl;

/// <summary>
/// A task whose answers a program can check (RLVR): problems with a prompt and a reference answer, and a reward with
/// exact parsing rules. The policy's completion is the text it generated up to (not including) the first stop token
/// <see cref="Stop"/>; a completion that never stops, or that breaks the task's format, earns 0 and is counted as
/// malformed, never an exception.
/// </summary>
public abstract class VerifiableTask
{
    /// <summary>The stop token: a completion ends at the first newline.</summary>
    public const char Stop = '\n';

    /// <summary>The task's name (<c>addition</c>).</summary>
    public abstract string Name { get; }

    /// <summary>The longest completion the rollout engine generates for this task (stop token included).</summary>
    public abstract int MaxCompletionTokens { get; }

    /// <summary>Draws one problem.</summary>
    public abstract Problem Draw(Random random);

    /// <summary>Scores a completion that stopped (the text before the stop token).</summary>
    protected abstract Score JudgeStopped(Problem problem, string answer);

    /// <summary>Scores what the policy generated (the raw text, which may or may not contain the stop token).</summary>
    public virtual Score Judge(Problem problem, string generated)
    {
        var stop = generated.IndexOf(Stop);
        return stop < 0 ? Rl.Score.Malformed("no stop token within the length limit") : JudgeStopped(problem,
            generated[..stop]);
    }

    /// <summary>The tasks by name.</summary>
    public static IReadOnlyDictionary<string, VerifiableTask> All { get; } = new Dictionary<string,
        VerifiableTask>(StringComparer.Ordinal)
    {
        ["addition"] = new AdditionTask(),
        ["multiplication"] = new MultiplicationTask(),
        ["countdown"] = new CountdownTask(),
        ["longtail"] = new LongTailTask(),
        ["wordproblems"] = new WordProblemTask(),
    };

    /// <summary>Looks a task up by name.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Unknown name; the message lists the tasks.</exception>
    public static VerifiableTask Named(string name) => All.TryGetValue(name, out var task)
        ? task
        : throw new ArgumentOutOfRangeException(nameof(name), name,
            $"unknown task; valid: {string.Join(", ", All.Keys)}");
}

/// <summary>One problem: the prompt the policy continues and the reference answer (without the stop token).</summary>
/// <param name="Prompt">Text the completion continues, e.g. <c>17+25=</c>.</param>
/// <param name="Answer">A correct completion, e.g. <c>42</c> (the supervised warm start trains on it).</param>
public sealed record Problem(string Prompt, string Answer);

/// <summary>What a completion earned.</summary>
/// <param name="Reward">1 for a correct answer, 0 otherwise.</param>
/// <param name="IsMalformed">True when the completion broke the format (never stopped, not a number, ...).</param>
/// <param name="Reason">Why it was malformed, or null.</param>
public sealed record Score(double Reward, bool IsMalformed, string? Reason)
{
    /// <summary>A well-formed answer, right or wrong.</summary>
    public static Score Judged(bool correct) => new(correct ? 1 : 0, false, null);

    /// <summary>A malformed completion: reward 0, with the reason.</summary>
    public static Score Malformed(string reason) => new(0, true, reason);

    /// <summary>True for a correct answer.</summary>
    [JsonIgnore] public bool IsCorrect => Reward > 0;
}
