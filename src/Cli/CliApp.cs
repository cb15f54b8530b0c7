using System.CommandLine;

namespace Toolkit.Cli;

/// <summary>The command tree of <c>toolkit</c> (tests enumerate it to check every option against its options
/// record).</summary>
internal static class CliApp
{
    /// <summary>Options every command accepts besides its record's: they steer the front end, not the job.</summary>
    public static readonly IReadOnlySet<string> FrontEndOptions
        = new HashSet<string>(StringComparer.Ordinal) { "--json", "--spec", "--verbose", "--help", "--version" };

    public static RootCommand CreateRoot()
    {
        var root = new RootCommand(
            "Toolkit: PaRO sharded training, HO-Ring collectives, Ring-1T style RL and elastic batch inference.")
        {
            InfoCommand.Create(),
            QuickstartCommand.Create(),
            ParoCommand.Create(),
            CollectiveCommand.Create(),
            RlCommand.Create(),
            InferCommand.Create(),
            BenchCommand.Create(),
            ModelCommand.Create(),
            DataCommand.Create(),
            JobsCommand.Create(),
            RankCommand.Create(),
            RankCommand.CreateRestart(),
        };
        root.Options.Add(new Option<bool>("--verbose") { Description
            = "Show stack traces of errors (also TOOLKIT_VERBOSE=1).", Recursive = true });
        return root;
    }
}
