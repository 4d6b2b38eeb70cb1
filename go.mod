module github.com/tokamak-ai/tokamak

go 1.26
