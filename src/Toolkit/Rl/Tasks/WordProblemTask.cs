using System.Globalization;
using System.Text.RegularExpressions;

namespace Toolkit.Rl;

/// <summary>
/// Grade-school math word problems, generated: the numbers sit in sentences ("Ana has 12 apples. She buys 3 packs of 4
/// more."), one or two steps of + − × ÷ on whole numbers. The completion is one line ending with the final-answer
/// marker of GSM8K, <c>#### N</c>; the reference answer shows the working first (<c>3*4=12, 12+12=24 #### 24</c>),
/// which the supervised warm start teaches. Parsing rule: the text after the last <c>#### </c> must be an optional
/// minus sign and 1 to 12 digits, nothing else; a completion without the marker is malformed. Only the final number
/// is judged. The prompts are long for a byte tokenizer (up to about 110 bytes): the task is for models with a real
/// tokenizer and a context to hold them.
/// </summary>
internal sealed partial class WordProblemTask : VerifiableTask
{
    private const string Marker = "#### ";

    private static readonly string[] Names = ["Ana", "Ben", "Carla", "Dev", "Emma", "Farid", "Gina", "Hugo", "Ines",
        "Jon"];

    private static readonly string[] Items = ["apples", "pencils", "stickers", "marbles", "cookies", "books", "shells",
        "cards"];

    /// <inheritdoc/>
    public override string Name => "wordproblems";

    /// <inheritdoc/>
    public override int MaxCompletionTokens => 40;

    /// <inheritdoc/>
    public override Problem Draw(Random random)
    {
        var name = Names[random.Next(Names.Length)];
        var item = Items[random.Next(Items.Length)];
        int a = random.Next(2, 50), b = random.Next(2, 10), c = random.Next(2, 13);
        var (question, working, answer) = random.Next(5) switch
        {
            0 => ($"{name} has {a} {item}. {name} gets {b} more. How many {item} does {name} have now?",
                $"{a}+{b}={a + b}", a + b),
            1 => ($"{name} had {a + b} {item} and gave {b} away. How many {item} are left?",
                $"{a + b}-{b}={a}", a),
            2 => ($"A box holds {c} {item}. How many {item} are in {b} boxes?", $"{c}*{b}={c * b}", c * b),
            3 => ($"{name} has {a} {item} and buys {b} packs of {c}. How many {item} does {name} have now?",
                $"{b}*{c}={b * c}, {a}+{b * c}={a + b * c}", a + b * c),
            _ => ($"{b * c} {item} are shared equally by {b} friends. How many {item} does each friend get?",
                $"{b * c}/{b}={c}", c),
        };
        return new($"{question} Answer: ", $"{working} {Marker}{answer.ToString(CultureInfo.InvariantCulture)}");
    }

    /// <inheritdoc/>
    protected override Score JudgeStopped(Problem problem, string answer)
    {
        var at = answer.LastIndexOf(Marker, StringComparison.Ordinal);
        if (at < 0) return Score.Malformed($"no final answer line ({Marker.Trim()} N)");
        var final = answer[(at + Marker.Length)..];
        var expected = problem.Answer[(problem.Answer.LastIndexOf(Marker, StringComparison.Ordinal) + Marker.Length)..];
        return IntegerPattern().IsMatch(final) && long.TryParse(final, NumberStyles.AllowLeadingSign,
            CultureInfo.InvariantCulture, out var value)
            ? Score.Judged(value == long.Parse(expected, CultureInfo.InvariantCulture))
            : Score.Malformed("the final answer is not an integer");
    }

    [GeneratedRegex(@"^-?[0-9]{1,12}$")]
    private static partial Regex IntegerPattern();
}
