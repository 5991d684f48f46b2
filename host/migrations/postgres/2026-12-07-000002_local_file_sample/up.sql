-- A sample packed document per stack files: the first stack packed against
-- them offers its state (its long tokens masked), and every later state is
-- packed with the files and the sample as its dictionary, so what all the
-- stacks of a driver version share (their resource tree's shape) costs a
-- few bytes. Set once, never changed while the files row lives;
-- `sample_sha256` names it in each packed state.
ALTER TABLE local_file ADD COLUMN sample TEXT;
ALTER TABLE local_file ADD COLUMN sample_sha256 TEXT;
