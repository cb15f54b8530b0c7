using System.CommandLine;
using Toolkit.Cli;

var parse = CliApp.CreateRoot().Parse(args);
if (parse.Errors.Count > 0) return UserErrors.ReportParseErrors(parse);
try
{
    return await parse.InvokeAsync(new InvocationConfiguration
    {
        EnableDefaultExceptionHandler = false,
        // Ctrl+C and SIGTERM cancel the job's token, and the job gets 20 s to stop what it started elsewhere (scancel a
        // Slurm job,
        // SIGTERM to srun). Except `infer worker`, which handles the signals itself: the first drains, the second gives
        // shards back.
        ProcessTerminationTimeout = parse.CommandResult.Command.Name == Toolkit.Jobs.ChildCommands.InferWorker[^1]
            ? null : TimeSpan.FromSeconds(20),
    });
}
catch (Exception e)
{
    return UserErrors.Report(e, UserErrors.Verbose(args), CommandSpecs.Of(parse.CommandResult.Command));
}
