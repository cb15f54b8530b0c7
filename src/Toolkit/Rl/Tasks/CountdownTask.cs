using System.Globalization;
using System.Text.RegularExpressions;

namespace Toolkit.Rl;

/// <summary>
/// A countdown-style puzzle: reach a target with given numbers. The prompt <c>3,5,7&gt;22=</c> gives three numbers from
/// 1 to 9 and a target; an answer is an expression over some of the numbers with +, - and * (usual precedence, no
/// parentheses, each given number used at most once), e.g. <c>3*5+7</c>. Parsing rules: digits and operators only,
/// alternating number and operator, at most 4 numbers, each a given one (as a multiset); anything else is malformed.
/// Reward 1 when the value equals the target.
/// </summary>
internal sealed partial class CountdownTask : VerifiableTask
{
    private static readonly char[] Operators = ['+', '-', '*'];

    /// <inheritdoc/>
    public override string Name => "countdown";

    /// <inheritdoc/>
    public override int MaxCompletionTokens => 10;

    /// <inheritdoc/>
    public override Problem Draw(Random random)
    {
        int[] numbers = [random.Next(1, 10), random.Next(1, 10), random.Next(1, 10)];
        var used = random.Next(2, 4);
        var order = numbers.OrderBy(_ => random.Next()).Take(used).ToArray();
        var expression = string.Concat(order.Select((n, i) => i == 0 ? $"{n}" : $"{Operators[random.Next(3)]}{n}"));
        return new($"{string.Join(',', numbers)}>{Evaluate(expression)}=", expression);
    }

    /// <inheritdoc/>
    protected override Score JudgeStopped(Problem problem, string answer)
    {
        if (!Expression().IsMatch(answer)) return Score.Malformed("not an expression of numbers and + - *");
        var given = problem.Prompt[..problem.Prompt.IndexOf('>')].Split(',').Select(int.Parse).ToList();
        foreach (var number in answer.Split(Operators).Select(n => int.Parse(n, CultureInfo.InvariantCulture)))
            if (!given.Remove(number)) return Score.Malformed($"uses {number}, which is not among the numbers left");
        var target = long.Parse(problem.Prompt[(problem.Prompt.IndexOf('>') + 1)..^1], CultureInfo.InvariantCulture);
        return Score.Judged(Evaluate(answer) == target);
    }

    /// <summary>Evaluates an expression of non-negative integers with +, - and * (multiplication first).</summary>
    public static long Evaluate(string expression)
    {
        long total = 0, term = 1;
        var sign = 1;
        var number = 0L;
        foreach (var c in expression + "+")
        {
            if (char.IsAsciiDigit(c)) { number = number * 10 + (c - '0'); continue; }
            term *= number;
            number = 0;
            if (c == '*') continue;
            total += sign * term;
            (term, sign) = (1, c == '-' ? -1 : 1);
        }
        return total;
    }

    [GeneratedRegex(@"^[0-9]{1,2}([+\-*][0-9]{1,2}){0,3}$")]
    private static partial Regex Expression();
}
