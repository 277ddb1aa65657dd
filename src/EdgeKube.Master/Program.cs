namespace EdgeKube.Master;

/// <summary>edgekube-master: the control plane the board fleet talks to.</summary>
public static class Program
{
    public static int Main(string[] args) => 0;
}
