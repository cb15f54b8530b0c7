using Toolkit.Comm;

namespace Toolkit.Tests.Comm;

public sealed class InProcessClusterTests
{
    [Fact]
    public async Task RunAsync_OneRankThrows_OthersWakeAndTheCauseIsRethrown()
    {
        var task = InProcessCluster.RunAsync(4, 2, comm =>
        {
            if (comm.Rank == 2) throw new InvalidDataException("rank 2 failed");
            var data = new float[16];
            comm.AllReduce<float>(data);   // would wait forever for rank 2 without the abort
            return 0;
        });
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => task.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("rank 2 failed", e.Message);
    }

    [Fact]
    public void Create_GroupSizeMustDivideRanks()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => InProcessCluster.Create(4, 3));
        Assert.Contains("divide", e.Message);
    }

    [Fact]
    public void Receive_LengthMismatch_NamesBothSizes()
    {
        var task = InProcessCluster.RunAsync(2, 1, comm =>
        {
            if (comm.Rank == 0) comm.Send<float>(new float[4], 1);
            else comm.Receive<float>(new float[3], 0);
            return 0;
        });
        var e = Assert.Throws<InvalidOperationException>(() => task.GetAwaiter().GetResult());
        Assert.Contains("expected 12 bytes", e.Message);
        Assert.Contains("16", e.Message);
    }

    [Fact]
    public void TensorAllReduce_WorksOnTensorMemory_InPlace()
    {
        Toolkit.Runtime.TorchRuntime.EnsureInitialized();
        var sums = InProcessCluster.Run(3, 1, comm =>
        {
            // held for the call (TK0001)
            using var value = TorchSharp.ScalarExtensionMethods.ToScalar(comm.Rank + 1);
            using var t = TorchSharp.torch.full(5, value, dtype: TorchSharp.torch.bfloat16);
            comm.AllReduce(t);
            return t.to_type(TorchSharp.torch.float32).data<float>().ToArray();
        });
        Assert.All(sums, s => Assert.All(s, v => Assert.Equal(6f, v)));
    }
}
