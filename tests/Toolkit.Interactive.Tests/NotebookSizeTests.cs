namespace Toolkit.Interactive.Tests;

public sealed class NotebookSizeTests
{
    [Theory]
    [InlineData("steps", "60", "6")]
    [InlineData("steps", "4", "4")]
    [InlineData("warmupSteps", "400", "60")]
    [InlineData("prompts", "32", "8")]
    [InlineData("samples", "8", "4")]
    [InlineData("evalEvery", "10", "6")]
    [InlineData("seeds", "1,2,3", "1")]
    [InlineData("lr", "0.001", "0.001")]          // not a size: untouched
    [InlineData("rolloutPrecision", "int8", "int8")]
    public void Small_CapsSizesOnly(string key, string given, string expected) =>
        Assert.Equal(expected, NotebookSize.Shrink(key, given, small: true));

    [Fact]
    public void NotSmall_LeavesEveryValue() => Assert.Equal("400", NotebookSize.Shrink("warmupSteps", "400",
        small: false));

    [Theory]
    [InlineData(null, false)]
    [InlineData("", false)]
    [InlineData("small", true)]
    public void Variable_UnsetOrSmall(string? value, bool small) => Assert.Equal(small, NotebookSize.Parse(value));

    [Fact]
    public void Variable_OtherValue_RefusedWithWhatToSet() =>
        Assert.Contains("set it to 'small'", Assert.Throws<ArgumentException>(()
            => NotebookSize.Parse("tiny")).Message);
}
