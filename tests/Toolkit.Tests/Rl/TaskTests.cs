using Toolkit.Rl;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Rl;

/// <summary>The verifiable tasks: committed problem sets regenerate byte for byte, held-out prompts stay out of
/// training, and the reward's parsing rules hold case by case.</summary>
public sealed class TaskTests
{
    [Theory]
    [InlineData("addition")]
    [InlineData("multiplication")]
    [InlineData("countdown")]
    [InlineData("longtail")]
    [InlineData("wordproblems")]
    public void ProblemSets_RegenerateTheCommittedFiles_AndKeepHeldOutPromptsOutOfTraining(string name)
    {
        var task = VerifiableTask.Named(name);
        var (train, heldOut) = TaskDatasets.Generate(task);
        var folder = Path.Combine(Repository.Root, "datasets", "rl");
        Assert.Equal(File.ReadAllText(Path.Combine(folder, $"{name}.train.jsonl")), TaskDatasets.ToJsonl(train));
        Assert.Equal(File.ReadAllText(Path.Combine(folder, $"{name}.heldout.jsonl")), TaskDatasets.ToJsonl(heldOut));
        Assert.Equal(train, TaskDatasets.Load(task, heldOut: false));
        var heldOutPrompts = heldOut.Select(p => p.Prompt).ToHashSet();
        Assert.Equal(heldOut.Count, heldOutPrompts.Count);
        Assert.DoesNotContain(train, p => heldOutPrompts.Contains(p.Prompt));
        // Every reference answer earns the reward, and fits the length limit with its stop token.
        Assert.All(train.Concat(heldOut), p =>
        {
            Assert.True(task.Judge(p, p.Answer + "\n").IsCorrect, $"{p.Prompt} {p.Answer}");
            Assert.True(p.Answer.Length + 1 <= task.MaxCompletionTokens);
        });
    }

    [Theory]
    [InlineData("addition", "17+25=", "42", "42\n", 1.0, false)]
    [InlineData("addition", "17+25=", "42", "42\nmore text", 1.0, false)]   // only the text before the stop counts
    [InlineData("addition", "17+25=", "42", "43\n", 0.0, false)]
    [InlineData("addition", "17+25=", "42", "042\n", 1.0, false)]            // leading zeros are a number
    [InlineData("addition", "17+25=", "42", " 42\n", 0.0, true)]             // no spaces
    [InlineData("addition", "17+25=", "42", "+42\n", 0.0, true)]
    [InlineData("addition", "17+25=", "42", "\n", 0.0, true)]                // empty
    [InlineData("addition", "17+25=", "42", "42", 0.0, true)]                // never stopped
    [InlineData("addition", "17+25=", "42", "4x\n", 0.0, true)]
    [InlineData("addition", "17+25=", "42", "9999999999999\n", 0.0, true)]   // over 12 digits
    [InlineData("multiplication", "12*3=", "36", "36\n", 1.0, false)]
    [InlineData("countdown", "3,5,7>22=", "3*5+7", "7+3*5\n", 1.0, false)]
    [InlineData("countdown", "3,5,7>22=", "3*5+7", "3*5\n", 0.0, false)]     // well formed, wrong value
    [InlineData("countdown", "3,5,7>22=", "3*5+7", "3*3+7\n", 0.0, true)]    // 3 used twice
    [InlineData("countdown", "3,5,7>22=", "3*5+7", "3*(5+7)\n", 0.0, true)]  // no parentheses
    [InlineData("countdown", "3,5,7>22=", "3*5+7", "22\n", 0.0, true)]       // 22 is not given
    [InlineData("countdown", "3,5,7>-2=", "3-5", "3-5\n", 1.0, false)]
    [InlineData("longtail", "bx3=", "bbb", "bbb\n", 1.0, false)]
    [InlineData("longtail", "bx3=", "bbb", "bb\n", 0.0, false)]
    [InlineData("longtail", "bx3=", "bbb", "BBB\n", 0.0, true)]
    [InlineData("wordproblems", WordPrompt, "3+4=7 #### 7", "3+4=7 #### 7\n", 1.0, false)]
    [InlineData("wordproblems", WordPrompt, "3+4=7 #### 7", "#### 7\n", 1.0, false)]     // only the final number
    [InlineData("wordproblems", WordPrompt, "3+4=7 #### 7", "3+4=8 #### 7\n", 1.0, false)]
    [InlineData("wordproblems", WordPrompt, "3+4=7 #### 7", "3+4=7 #### 8\n", 0.0, false)]
    [InlineData("wordproblems", WordPrompt, "3+4=7 #### 7", "#### 6 #### 7\n", 1.0, false)] // the last marker
    [InlineData("wordproblems", WordPrompt, "3+4=7 #### 7", "3+4=7\n", 0.0, true)]        // no final answer line
    [InlineData("wordproblems", WordPrompt, "3+4=7 #### 7", "#### 7 apples\n", 0.0, true)]
    [InlineData("wordproblems", WordPrompt, "3+4=7 #### 7", "####7\n", 0.0, true)]
    public void Reward_FollowsTheParsingRules(string name, string prompt, string answer, string generated,
        double reward, bool malformed)
    {
        var score = VerifiableTask.Named(name).Judge(new Problem(prompt, answer), generated);
        Assert.Equal((reward, malformed), (score.Reward, score.IsMalformed));
        Assert.Equal(malformed, score.Reason is not null);
    }

    private const string WordPrompt = "Ana has 3 apples. Ana gets 4 more. How many apples does Ana have now? Answer: ";

    /// <summary>Every committed word problem's reference answer earns its reward, and its working ends in the number
    /// after the marker.</summary>
    [Fact]
    public void WordProblems_ReferenceAnswersAreRight()
    {
        var task = VerifiableTask.Named("wordproblems");
        foreach (var p in TaskDatasets.Load(task, heldOut: false).Concat(TaskDatasets.Load(task, heldOut: true)))
        {
            Assert.Equal(1.0, task.Judge(p, p.Answer + "\n").Reward);
            var (working, final) = (p.Answer.Split(" #### ")[0], p.Answer.Split(" #### ")[1]);
            Assert.EndsWith("=" + final, working);
        }
    }

    [Fact]
    public void Countdown_EvaluatesWithMultiplicationFirst()
    {
        Assert.Equal(22, CountdownTask.Evaluate("3*5+7"));
        Assert.Equal(-26, CountdownTask.Evaluate("9-5*7"));
        Assert.Equal(0, CountdownTask.Evaluate("2*3-6"));
    }

    [Fact]
    public void LongTail_HasALongTail()
    {
        var lengths = TaskDatasets.Load(VerifiableTask.Named("longtail"),
            heldOut: false).Select(p => p.Answer.Length).Order().ToList();
        Assert.True(lengths[lengths.Count / 2] <= 4, $"median {lengths[lengths.Count / 2]}");
        Assert.True(lengths[^1] >= 8 * lengths[lengths.Count / 2], $"longest {lengths[^1]}");
        // 15% drawn long; held-out prompts (mostly short) leave training
        Assert.InRange(lengths.Count(l => l >= 12) / (double)lengths.Count, 0.10, 0.25);
    }

    [Fact]
    public void UnknownTask_NamesTheValidOnes()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => VerifiableTask.Named("chess"));
        Assert.Contains("addition, multiplication, countdown, longtail", e.Message);
    }
}
