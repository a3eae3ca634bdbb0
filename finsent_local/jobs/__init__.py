"""Jobs over tables: readers and writers by format (tables), the resumable single-machine file job
(file_job), a column through the service (scoring), and the same job on Ray Data (ray_job). What
stops a job is a JobError (errors).
Imports the engine and leaves."""
