using System.CommandLine;
using Toolkit.Cli;

var parse = CliApp.CreateRoot().Parse(args);
if (parse.Errors.Count > 0) return UserErrors.ReportParseErrors(parse);
try
{
    return await parse.InvokeAsync(new InvocationConfiguration
    {
        EnableDefaultExceptionHandler = false,
        // Ctrl+C cancels the job's token; give the job time to stop what it started elsewhere (scancel a Slurm job, SIGTERM to srun).
        ProcessTerminationTimeout = TimeSpan.FromSeconds(20),
    });
}
catch (Exception e)
{
    return UserErrors.Report(e, UserErrors.Verbose(args));
}
