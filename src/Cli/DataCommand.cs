using System.CommandLine;
using Toolkit.Data;

namespace Toolkit.Cli;

/// <summary><c>toolkit data corpus</c>: regenerates the synthetic training corpus.</summary>
internal static class DataCommand
{
    public static Command Create()
    {
        var output = new Option<FileInfo>("--out") { Description = "Where to write the text.", Required = true };
        var seed = new Option<int>("--seed") { Description = "Generator seed.", DefaultValueFactory = _ => 1 };
        var stories = new Option<int>("--stories") { Description = "Number of stories.",
            DefaultValueFactory = _ => 2000 };
        var corpus = new Command("corpus",
            "Write the synthetic stories corpus (datasets/synthetic-stories.txt is seed 1, 2000 stories).") { output,
                seed, stories };
        corpus.SetAction(parse =>
        {
            File.WriteAllText(parse.GetValue(output)!.FullName, SyntheticCorpus.Generate(parse.GetValue(seed),
                parse.GetValue(stories)));
            return 0;
        });
        var tasksOut = new Option<DirectoryInfo>("--out") { Description
            = "Folder for <task>.train.jsonl and <task>.heldout.jsonl.", Required = true };
        var tasksSeed = new Option<int>("--seed") { Description = "Generator seed.", DefaultValueFactory = _ => 1 };
        var tasks = new Command("tasks", "Write the RL tasks' problem sets (datasets/rl is seed 1).") { tasksOut,
            tasksSeed };
        tasks.SetAction(parse =>
        {
            Toolkit.Rl.TaskDatasets.WriteAll(parse.GetValue(tasksOut)!.FullName, parse.GetValue(tasksSeed));
            return 0;
        });
        var sentencesOut = new Option<FileInfo>("--out") { Description
            = "Where to write the records: JSONL, or Parquet when the name ends in .parquet.", Required = true };
        var records = new Option<int>("--records") { Description = "Number of records.",
            DefaultValueFactory = _ => 2000 };
        var sentencesSeed = new Option<int>("--seed") { Description = "Generator seed.", DefaultValueFactory = _ => 1 };
        var badEvery = new Option<int>("--bad-every") { Description = "Make every Nth record malformed (0: none).",
            DefaultValueFactory = _ => 0 };
        var sentences = new Command("sentences",
            "Write a batch-inference input of id/text records (datasets/infer/sentences-2k.jsonl is seed 1, 2000 " +
                "records, --bad-every 400).")
        {
            sentencesOut, records, sentencesSeed, badEvery,
        };
        sentences.SetAction(parse =>
        {
            Toolkit.BatchInference.SentenceDataset.Write(parse.GetValue(sentencesOut)!.FullName,
                parse.GetValue(records), parse.GetValue(sentencesSeed), parse.GetValue(badEvery));
            return 0;
        });
        return new Command("data", "Data set tools.") { corpus, tasks, sentences };
    }
}
