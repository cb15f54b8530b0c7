using Toolkit.Reporting;

namespace Toolkit.Tests.Reporting;

public sealed class TablesTests
{
    [Fact]
    public void AnonymousRows_ColumnsAreTheirProperties_CellsShort()
    {
        var table = new[]
        {
            new { Numerics = "Fp32", Kl = 0.0, Max = double.NaN, Flips = new[] { 0.5, 0.25 } },
            new { Numerics = "Int8", Kl = 1.23456e-5, Max = 9.5367431640625, Flips = new double[] { } },
        }.ToTable("dial");
        Assert.Equal("dial", table.Title);
        Assert.Equal(["Numerics", "Kl", "Max", "Flips"], table.Columns);
        Assert.Equal(["Fp32", "0", "", "0.5, 0.25"], table.Rows[0]);
        Assert.Equal(["Int8", "1.235e-5", "9.537", ""], table.Rows[1]);
        Assert.Empty(table.Notes);
    }

    [Fact]
    public void ManyRows_CutAtTheLimit_WithANote()
    {
        var table = Enumerable.Range(0, 5).Select(i => new { I = i, Big = 1e7 * (i + 1) }).ToTable(maxRows: 3);
        Assert.Equal(3, table.Rows.Count);
        Assert.Equal(["2", "3e7"], table.Rows[2]);
        Assert.Equal(["2 more rows not shown"], table.Notes);
    }

    [Fact]
    public void ValuesWithoutProperties_OneValueColumn() =>
        Assert.Equal([["1"], ["2"]], new[] { 1, 2 }.ToTable().Rows);

    [Fact]
    public void AGetterThatThrows_ShowsItsErrorInItsCell() =>
        Assert.Equal(["1", "(InvalidOperationException: disposed)"], new[] { new Throwing() }.ToTable().Rows[0]);

    private sealed class Throwing
    {
        public int Id => 1;
        public int Size => throw new InvalidOperationException("disposed");
    }
}
