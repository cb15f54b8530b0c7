using System.CommandLine;
using Toolkit.Cli;

var root = new RootCommand("Toolkit: PaRO sharded training, HO-Ring collectives, Ring-1T style RL and elastic batch inference.")
{
    InfoCommand.Create(),
    QuickstartCommand.Create(),
    ParoCommand.Create(),
    DataCommand.Create(),
    BenchCommand.Create(),
    CollectiveCommand.Create(),
    SelfTestCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
