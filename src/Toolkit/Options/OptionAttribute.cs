namespace Toolkit.Options;

/// <summary>
/// Declares a property of an options record as a user-facing option: the CLI, the notebook magics and JSON
/// configuration files all derive their option from this one declaration (name, alias, description, type and default,
/// which is the property's initial value).
/// </summary>
/// <param name="description">What the option does and its trade-off; front ends append the default.</param>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class OptionAttribute(string description) : Attribute
{
    /// <summary>What the option does.</summary>
    public string Description { get; } = description;

    /// <summary>The option's name without dashes; default: the property name in kebab-case (<c>GroupSize</c> is
    /// <c>--group-size</c>).</summary>
    public string? Name { get; init; }

    /// <summary>A second name without dashes (<c>np</c> for <c>--ranks</c>), or null.</summary>
    public string? Alias { get; init; }
}

/// <summary>Marks a property that holds a nested options record: its options are offered flat, next to the parent's
/// own.</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class OptionGroupAttribute : Attribute
{
    /// <summary>Options of the nested record that this parent does not offer (without dashes), e.g. <c>launcher</c> for
    /// a benchmark that picks launchers itself.</summary>
    public string[] Exclude { get; init; } = [];
}
