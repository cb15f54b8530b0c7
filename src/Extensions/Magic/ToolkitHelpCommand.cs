using Microsoft.DotNet.Interactive.Commands;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!toolkit</c> alone: lists the subcommands.</summary>
public sealed class ToolkitHelpCommand : KernelDirectiveCommand;
