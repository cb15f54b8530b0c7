using System.CommandLine;
using Toolkit.Cli;

var verbose = UserErrors.Verbose(args);
var root = new RootCommand("Toolkit: PaRO sharded training, HO-Ring collectives, Ring-1T style RL and elastic batch inference.")
{
    InfoCommand.Create(),
    QuickstartCommand.Create(),
    ParoCommand.Create(),
    CollectiveCommand.Create(),
    BenchCommand.Create(),
    DataCommand.Create(),
    RankCommand.Create(),
};
root.Options.Add(new Option<bool>("--verbose") { Description = "Show stack traces of errors (also TOOLKIT_VERBOSE=1).", Recursive = true });
var parse = root.Parse(args);
if (parse.Errors.Count > 0) return UserErrors.ReportParseErrors(parse);
try
{
    return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e)
{
    return UserErrors.Report(e, verbose);
}
