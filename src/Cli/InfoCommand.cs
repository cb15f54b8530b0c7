using System.CommandLine;
using Toolkit.Runtime;

namespace Toolkit.Cli;

/// <summary><c>toolkit info</c>: versions, native runtime, device, MPI, cores.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var json = new Option<FileInfo?>("--json") { Description = "Also write the information as JSON to this file." };
        var command = new Command("info",
            "Show toolkit and TorchSharp versions, device, MPI library and cores.") { json };
        var options = new CliOptions<ToolkitInfoOptions>(command, new(), "info");
        command.SetAction(parse =>
        {
            var info = ToolkitInfo.Collect(options.Bind(parse).Device);
            var width = info.Rows().Max(r => r.Name.Length);
            foreach (var (name, value) in info.Rows()) Console.WriteLine($"{name.PadRight(width)}  {value}");
            Facts.WriteJson(parse.GetValue(json), info);
            return 0;
        });
        return command;
    }
}
