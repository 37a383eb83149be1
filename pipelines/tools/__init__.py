"""Commands over an output folder: status, retry, sample, doctor, report/, demo/."""
