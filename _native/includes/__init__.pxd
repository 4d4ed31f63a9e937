# Makes includes/ a package for `from includes cimport system`.
