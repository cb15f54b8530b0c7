using Microsoft.DotNet.Interactive.Commands;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!paro</c> alone: lists the subcommands.</summary>
public sealed class ParoHelpCommand : KernelDirectiveCommand;
