"""How often the PyTorch course's "hello" -> "ohlol" programs learn within 15 epochs.

For `examples/README.md` (hello_rnn): runs each variant of the course for seeds 0-19 and
prints how many end with the prediction `ohlol`. `python3 scripts/hello_torch_rates.py`
"""
import torch

IDX2CHAR = ["e", "h", "l", "o"]
X = [1, 0, 2, 2, 3]  # "hello"
Y = [3, 1, 2, 3, 2]  # "ohlol"


def decode(logits):
    return "".join(IDX2CHAR[i] for i in logits.argmax(1).tolist())


def cell_run(lr):
    """The course's RNNCell loop: the hidden state is the prediction, losses summed."""
    cell = torch.nn.RNNCell(4, 4)
    opt = torch.optim.Adam(cell.parameters(), lr=lr)
    crit = torch.nn.CrossEntropyLoss()
    one_hot = torch.eye(4)[X].view(5, 1, 4)
    labels = torch.LongTensor(Y).view(-1, 1)

    def forward():
        h, outs = torch.zeros(1, 4), []
        for inp in one_hot:
            h = cell(inp, h)
            outs.append(h)
        return torch.cat(outs)

    for _ in range(15):
        opt.zero_grad()
        out = forward()
        loss = sum(crit(out[t : t + 1], labels[t]) for t in range(5))
        loss.backward()
        opt.step()
    with torch.no_grad():
        return decode(forward())


class Model(torch.nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        if kind == "rnn":
            self.rnn = torch.nn.RNN(4, 4, batch_first=True)
        elif kind == "embedding":
            self.emb = torch.nn.Embedding(4, 10)
            self.rnn = torch.nn.RNN(10, 8, 2, batch_first=True)
        elif kind == "lstm":
            self.rnn = torch.nn.LSTM(4, 8, batch_first=True)
        else:
            self.rnn = torch.nn.GRU(4, 8, batch_first=True)
        self.fc = None if kind == "rnn" else torch.nn.Linear(8, 4)

    def forward(self):
        if self.kind == "embedding":
            x = self.emb(torch.LongTensor([X]))
        else:
            x = torch.eye(4)[X].view(1, 5, 4)
        out, _ = self.rnn(x)
        out = out if self.fc is None else self.fc(out)
        return out.reshape(-1, 4)


def layer_run(kind, lr):
    model = Model(kind)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    crit = torch.nn.CrossEntropyLoss()
    for _ in range(15):
        opt.zero_grad()
        crit(model(), torch.LongTensor(Y)).backward()
        opt.step()
    with torch.no_grad():
        return decode(model())


def rate(run):
    results = []
    for seed in range(20):
        torch.manual_seed(seed)
        results.append(run())
    return sum(r == "ohlol" for r in results), results


if __name__ == "__main__":
    runs = [
        ("cell", 0.1, lambda: cell_run(0.1)),
        ("rnn", 0.1, lambda: layer_run("rnn", 0.1)),
        ("rnn", 0.05, lambda: layer_run("rnn", 0.05)),
        ("embedding", 0.05, lambda: layer_run("embedding", 0.05)),
        ("lstm", 0.05, lambda: layer_run("lstm", 0.05)),
        ("gru", 0.05, lambda: layer_run("gru", 0.05)),
    ]
    for name, lr, run in runs:
        hits, results = rate(run)
        print(f"{name:9} lr {lr}: {hits}/20 ohlol   {' '.join(results)}")
