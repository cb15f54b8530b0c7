using System.Globalization;
using System.Text.RegularExpressions;

namespace Toolkit.Rl;

/// <summary>
/// Base of tasks whose answer is one integer. Parsing rule: the completion must be an optional minus sign and 1 to 12
/// digits, nothing else (no spaces, no leading plus); otherwise it is malformed.
/// </summary>
internal abstract partial class IntegerAnswerTask : VerifiableTask
{
    /// <inheritdoc/>
    protected override Score JudgeStopped(Problem problem, string answer) =>
        IntegerPattern().IsMatch(answer) && long.TryParse(answer, NumberStyles.AllowLeadingSign,
            CultureInfo.InvariantCulture, out var value)
            ? Score.Judged(value == long.Parse(problem.Answer, CultureInfo.InvariantCulture))
            : Score.Malformed("not an integer");

    [GeneratedRegex(@"^-?[0-9]{1,12}$")]
    private static partial Regex IntegerPattern();
}

/// <summary>Multi-digit addition: <c>a+b=</c> with a and b of up to two digits, answer a + b.</summary>
internal sealed class AdditionTask : IntegerAnswerTask
{
    /// <inheritdoc/>
    public override string Name => "addition";

    /// <inheritdoc/>
    public override int MaxCompletionTokens => 6;

    /// <inheritdoc/>
    public override Problem Draw(Random random)
    {
        int a = random.Next(100), b = random.Next(100);
        return new($"{a}+{b}=", (a + b).ToString(CultureInfo.InvariantCulture));
    }
}

/// <summary>Multiplication: <c>a*b=</c> with a of up to two digits and b of one, answer a · b.</summary>
internal sealed class MultiplicationTask : IntegerAnswerTask
{
    /// <inheritdoc/>
    public override string Name => "multiplication";

    /// <inheritdoc/>
    public override int MaxCompletionTokens => 6;

    /// <inheritdoc/>
    public override Problem Draw(Random random)
    {
        int a = random.Next(100), b = random.Next(10);
        return new($"{a}*{b}=", (a * b).ToString(CultureInfo.InvariantCulture));
    }
}

/// <summary>
/// The long-tail task, for C3PO++: <c>cxk=</c> asks for the letter c repeated k times, and k has a long tail (85% of
/// problems ask for 1 to 4 letters, the rest for 12 to 40), so a few rollouts are many times longer than most. Parsing
/// rule: lowercase letters only.
/// </summary>
internal sealed partial class LongTailTask : VerifiableTask
{
    /// <inheritdoc/>
    public override string Name => "longtail";

    /// <inheritdoc/>
    public override int MaxCompletionTokens => 48;

    /// <inheritdoc/>
    public override Problem Draw(Random random)
    {
        var letter = (char)('a' + random.Next(26));
        var count = random.NextDouble() < 0.85 ? random.Next(1, 5) : random.Next(12, 41);
        return new($"{letter}x{count}=", new string(letter, count));
    }

    /// <inheritdoc/>
    protected override Score JudgeStopped(Problem problem, string answer) =>
        Letters().IsMatch(answer) ? Score.Judged(answer == problem.Answer) : Score.Malformed("not lowercase letters");

    [GeneratedRegex(@"^[a-z]*$")]
    private static partial Regex Letters();
}
