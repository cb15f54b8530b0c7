using System.CommandLine;
using Toolkit.Cli;

var parse = CliApp.CreateRoot().Parse(args);
if (parse.Errors.Count > 0) return UserErrors.ReportParseErrors(parse);
try
{
    return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e)
{
    return UserErrors.Report(e, UserErrors.Verbose(args));
}
