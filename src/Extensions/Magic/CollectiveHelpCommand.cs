using Microsoft.DotNet.Interactive.Commands;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!collective</c> alone: lists the subcommands.</summary>
public sealed class CollectiveHelpCommand : KernelDirectiveCommand;
